"""rm: a reward model, trained on preference pairs with trl's ``RewardTrainer``.

Keys: ``dataset`` (a preference set: sharegpt or alpaca with ``ranking: true``; ``dpo_en_demo``),
``cutoff_len`` (longer pairs are dropped), ``output_dir`` (``reward_model`` of a later ppo run),
``val_size`` (held-out pairs: ``eval_accuracy``). The model is the base with a scalar head
(sequence classification, ``num_labels=1``); with LoRA the head trains too and is saved with the
adapter, so the output folder loads on its own with ``tk.load_reward_model``.
Logged: ``loss``, ``accuracy`` (chosen scored above rejected), ``margin``, rewards.
"""

from __future__ import annotations

import datasets
import torch

from ..config import Config
from ..data import load_rows
from .base import only_known, training_kwargs

HEAD = "score"
METRICS = ("loss", "accuracy", "margin", "eval_loss", "eval_accuracy", "eval_margin")


def prepare(cfg: Config, tokenizer) -> datasets.DatasetDict:
    """Preference rows: ``prompt`` (messages), ``chosen`` and ``rejected`` (one assistant message each)."""
    return load_rows(cfg, "pairwise", tokenizer)


def build(cfg: Config, model, tokenizer, data: datasets.DatasetDict, callbacks: list):
    from trl import RewardConfig, RewardTrainer  # imported here, after the backend (Unsloth patches trl)

    args = RewardConfig(**only_known(RewardConfig, training_kwargs(cfg, "eval" in data)), max_length=cfg.cutoff_len)
    return RewardTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data.get("eval"),
                         processing_class=tokenizer, callbacks=callbacks)


def score(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 8) -> list[float]:
    """The reward model's scalar score of each (prompt, response) pair, as the rm stage saw them:
    the chat template applied to a user turn and an assistant turn."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                      tokenize=False)
        for p, r in zip(prompts, responses)
    ]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start: start + batch_size], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(device)
                scores.extend(model(**batch).logits[:, 0].float().tolist())
    finally:
        model.train(was_training)
    return scores
