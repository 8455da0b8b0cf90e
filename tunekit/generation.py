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
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
    finally:
        tokenizer.padding_side = side
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    sampling = temperature > 0
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": sampling, "pad_token_id": tokenizer.pad_token_id,
              "eos_token_id": tokenizer.eos_token_id}
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    was_training = model.training
    inference_mode(model)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            output = model.generate(**batch, **kwargs)
    finally:
        if was_training:
            training_mode(model)
    new = output[:, batch["input_ids"].shape[1]:]
    answers = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]
    return answers[0] if single else answers


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
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
