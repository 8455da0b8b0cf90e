"""Loading through Unsloth (``backend: unsloth``; ``backends.py`` chooses it and imports it first):
``FastLanguageModel`` for LoRA and QLoRA language models, with Unsloth's own gradient checkpointing."""

from __future__ import annotations

import torch

from ..config import Config, comma_list
from .adapters import adapter_folders, lora_targets, warn_if_half_trained
from .resolve import resolve_model


def unsloth_load_kwargs(cfg: Config, path: str) -> dict:
    """``FastLanguageModel.from_pretrained`` keywords for ``cfg``: ``path`` is the model (a folder or hub id),
    or the adapter to continue from (Unsloth then loads the base its adapter_config.json names)."""
    dtype = torch.bfloat16 if cfg.bf16 else torch.float16 if cfg.fp16 else None  # None: Unsloth picks bf16 or fp16
    return dict(
        model_name=path, max_seq_length=cfg.cutoff_len, dtype=dtype,
        load_in_4bit=cfg.quantization_bit == 4, load_in_8bit=cfg.quantization_bit == 8,
        trust_remote_code=cfg.trust_remote_code, fix_tokenizer=False,  # tunekit's tokenizer tokenized the data
        use_gradient_checkpointing=unsloth_checkpointing(cfg), random_state=cfg.seed,
    )


def unsloth_peft_kwargs(cfg: Config, targets: list[str]) -> dict:
    """``FastLanguageModel.get_peft_model`` keywords for ``cfg``'s LoRA."""
    return dict(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
        bias="none", modules_to_save=comma_list(cfg.additional_target) or None,
        use_gradient_checkpointing=unsloth_checkpointing(cfg), random_state=cfg.seed,
        max_seq_length=cfg.cutoff_len,
    )


def unsloth_checkpointing(cfg: Config):
    """Unsloth's own gradient checkpointing (activations offloaded to CPU memory) while training, unless the
    config turns checkpointing off."""
    return "unsloth" if cfg.do_train and cfg.gradient_checkpointing is not False else False


def load_unsloth(cfg: Config, tokenizer):
    from unsloth import FastLanguageModel

    adapter = next(iter(adapter_folders(cfg)), None)  # at most one here (backends.plain_reason)
    if adapter:
        warn_if_half_trained(adapter)
    path = adapter or resolve_model(cfg.model_name_or_path)
    model, _ = FastLanguageModel.from_pretrained(**unsloth_load_kwargs(cfg, path))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if not adapter:
        model = FastLanguageModel.get_peft_model(model, **unsloth_peft_kwargs(cfg, lora_targets(model, cfg)))
    if not cfg.do_train:
        FastLanguageModel.for_inference(model)
    model.tunekit_backend = "unsloth"  # generation switches it to inference and back (generation.py)
    return model
