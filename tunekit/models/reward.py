"""Reward models, as the ``rm`` stage saves them (a LoRA adapter with its scalar head, or a full model):
recognise such a folder, load it, and score (prompt, answer) pairs with it (ppo's and grpo's rewards)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch

from ..config import Config, parse_config
from ..errors import ConfigError
from .load import load_model


def reward_model_config(path: str | None, key: str = "reward_model") -> Config:
    """How to load the reward model saved in ``path``, from its files alone (a quick check before any
    loading): a ``ConfigError`` naming ``key`` (the config key or argument that gave ``path``, e.g. ``judge``)
    when ``path`` is not the output of an rm run."""
    folder = Path(path or "")
    fix = "give the output_dir of a stage: rm run"
    not_rm = f"{key}={path!r} is {{}}, not a reward model; {fix}"
    if not path or not folder.exists():
        raise ConfigError(f"{key}={path!r} does not exist; {fix}")
    if (folder / "adapter_config.json").is_file():
        adapter = json.loads((folder / "adapter_config.json").read_text())
        if adapter.get("task_type") != "SEQ_CLS":
            raise ConfigError(not_rm.format("an adapter of a language model"))
        return parse_config({"model_name_or_path": adapter.get("base_model_name_or_path"),
                            "adapter_name_or_path": str(folder), "do_train": False, "finetuning_type": "lora"})
    if (folder / "config.json").is_file():
        architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ConfigError(not_rm.format("a language model"))
        return parse_config({"model_name_or_path": str(folder), "do_train": False, "finetuning_type": "full"})
    raise ConfigError(f"{key}={path!r} is not the output_dir of an rm run (no adapter_config.json or "
                      f"config.json); {fix}")


@contextmanager
def quiet_score_head():
    """Silence transformers' load report while a base model gets a score head: its "score.weight MISSING /
    newly initialized" is expected (a reward adapter brings the head, or a fresh head is the point)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_reward_model(path: str, key: str = "reward_model"):
    """A reward model saved by the rm stage (LoRA adapter + head, or a full model) and its tokenizer,
    ready for ``tk.score``; ``key`` names where ``path`` came from in the error when it is not one."""
    cfg = reward_model_config(path, key)
    with quiet_score_head():
        model, tokenizer = load_model(cfg, head="score")
    model.eval()
    return model, tokenizer
def score(model, tokenizer, prompts: list, responses: list[str], batch_size: int = 8) -> list[float]:
    """The reward model's scalar score of each (prompt, response) pair, as the rm stage saw them: the chat
    template applied to the prompt (a user turn's text, or a conversation's messages up to its last user
    turn, earlier turns kept) and an assistant turn."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    from ..rendering import answer_ids

    ids = []
    for p, r in zip(prompts, responses):
        prompt, answer = answer_ids(tokenizer, [{"role": "user", "content": p}] if isinstance(p, str) else p,
                                    {"role": "assistant", "content": r})
        ids.append(prompt + answer)
    return score_ids(model, ids, tokenizer.pad_token_id, batch_size)


def score_ids(model, sequences: list[list[int]], pad_token_id: int, batch_size: int = 8) -> list[float]:
    """The reward model's scalar score of each token sequence, ``batch_size`` at a time, right-padded (the
    padding the rm stage trains with)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        with torch.no_grad():
            for start in range(0, len(sequences), batch_size):
                part = sequences[start: start + batch_size]
                width = max(map(len, part))
                ids = torch.tensor([list(s) + [pad_token_id] * (width - len(s)) for s in part], device=device)
                mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in part], device=device)
                scores.extend(model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist())
    finally:
        model.train(was_training)
    return scores
