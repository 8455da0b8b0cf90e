"""Sampling and chat helpers used by the stages, the CLI and the panels."""

from __future__ import annotations

import torch


def generate(model, tokenizer, prompts: list[str] | str, max_new_tokens: int = 64, temperature: float = 0.0,
             top_p: float = 1.0, top_k: int = 0, system: str | None = None, seed: int | None = None,
             chat: bool = True) -> list[str]:
    """Answers to ``prompts``, one string each (the new text only).

    Each prompt is wrapped in the tokenizer's chat template (``chat=False`` sends it raw).
    ``temperature=0`` decodes greedily; above 0 samples with ``top_p`` / ``top_k``, reproducibly
    when ``seed`` is given. The model's train/eval mode is restored afterwards (an Unsloth model is
    switched with ``FastLanguageModel.for_inference`` and back with ``for_training``).
    """
    single = isinstance(prompts, str)
    prompts = [prompts] if single else list(prompts)
    texts = [_render(tokenizer, p, system) if chat else p for p in prompts]
    ids = [tokenizer(text, add_special_tokens=not chat)["input_ids"] for text in texts]
    answers = generate_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                           temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, batch_size=len(ids))
    answers = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in answers]
    return answers[0] if single else answers


def generate_ids(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int = 64, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0,
                 seed: int | None = None, batch_size: int = 8) -> list[list[int]]:
    """The answer's token ids to each prompt (token ids), ``batch_size`` prompts at a time, left-padded so that
    every row continues from its right end; each answer ends before its first end-of-sequence token.
    ``do_sample=False`` decodes greedily; sampling is reproducible when ``seed`` is given."""
    pad = tokenizer.pad_token_id
    config_ends = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    config_ends = config_ends if isinstance(config_ends, list) else [config_ends]
    ends = [e for e in dict.fromkeys([tokenizer.eos_token_id, *config_ends]) if e is not None]  # any of them ends
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "pad_token_id": pad, "eos_token_id": ends,
              "repetition_penalty": repetition_penalty}
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    device = next(model.parameters()).device
    was_training = model.training
    inference_mode(model)
    answers: list[list[int]] = []
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            for start in range(0, len(prompts), batch_size):
                part = prompts[start: start + batch_size]
                width = max(map(len, part))
                ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in part], device=device)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in part], device=device)
                output = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
                for row in output[:, width:].tolist():
                    cut = next((i for i, token in enumerate(row) if token in ends), len(row))
                    answers.append(row[:cut])
    finally:
        if was_training:
            training_mode(model)
    return answers


def inference_mode(model) -> None:
    """Ready ``model`` to generate: ``eval()``, or Unsloth's ``for_inference`` for a model it loaded."""
    if getattr(model, "tunekit_backend", None) == "unsloth":
        from unsloth import FastLanguageModel

        FastLanguageModel.for_inference(model)
    else:
        model.eval()


def training_mode(model) -> None:
    """Back to training after ``inference_mode``: ``train()``, or Unsloth's ``for_training``."""
    if getattr(model, "tunekit_backend", None) == "unsloth":
        from unsloth import FastLanguageModel

        FastLanguageModel.for_training(model)
    else:
        model.train()


def _render(tokenizer, prompt: str, system: str | None) -> str:
    from .rendering import prompt_text

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return prompt_text(tokenizer, messages)
