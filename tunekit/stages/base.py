"""What every stage shares: TrainingArguments from the config, and padding collation."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import fields

import torch

from ..config import Config, ConfigError, comma_list
from ..data import IGNORE_INDEX
from ..distributed import say


def training_kwargs(cfg: Config, has_eval: bool) -> dict:
    """transformers ``TrainingArguments`` keywords for ``cfg`` (the same for every stage)."""
    eval_strategy = cfg.eval_strategy if has_eval else "no"
    return dict(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps or cfg.warmup_ratio,  # a float below 1 is a ratio
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optim,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy=cfg.save_strategy,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy=eval_strategy,
        eval_steps=cfg.eval_steps or (cfg.logging_steps if eval_strategy == "steps" else None),
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        seed=cfg.seed,
        gradient_checkpointing=bool(cfg.gradient_checkpointing),
        ddp_timeout=cfg.ddp_timeout,
        deepspeed=cfg.deepspeed,
        report_to=comma_list(cfg.report_to) or "none",
        dataloader_num_workers=cfg.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        # without CUDA, a multi-process launch (torchrun, accelerate launch) is data-parallel over gloo
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
    ) | cfg.training_args


def activation_bytes(model_config, rows: int, length: int) -> int:
    """About how much memory the activations of one micro-batch keep for the backward pass (fp32,
    attention without a fused kernel): per layer the hidden states, q/k/v, the MLP's inner states and
    the attention probabilities; then the logits and their gradient over the whole vocabulary."""
    hidden = getattr(model_config, "hidden_size", 0)
    inner = getattr(model_config, "intermediate_size", 4 * hidden)
    heads = getattr(model_config, "num_attention_heads", 1)
    layers = getattr(model_config, "num_hidden_layers", 1)
    vocab = getattr(model_config, "vocab_size", 0)
    per_layer = rows * length * (10 * hidden + 3 * inner) + rows * heads * length * length
    return 4 * (layers * per_layer + 2 * rows * length * vocab)


def decide_gradient_checkpointing(cfg: Config, model, data) -> None:
    """Unless the config sets ``gradient_checkpointing``, turn it on only when one micro-batch's
    activations would take more than half the memory there is (it costs about a third more compute);
    the log says which was chosen and why."""
    if getattr(model, "tunekit_backend", None) == "unsloth":  # Unsloth wrapped the layers when it loaded them
        how = "off (set in the config)" if cfg.gradient_checkpointing is False else (
            "Unsloth's, activations offloaded to CPU memory (gradient_checkpointing: false turns it off)")
        say(f"[tunekit] gradient checkpointing: {how}")
        cfg.gradient_checkpointing = False  # the Trainer must not wrap them a second time
        return
    if cfg.gradient_checkpointing is not None:
        say(f"[tunekit] gradient checkpointing: {'on' if cfg.gradient_checkpointing else 'off'} (set in the config)")
        return
    lengths = [len(ids) for ids in data["train"]["input_ids"]] if "input_ids" in data["train"].column_names else []
    length = min(max(lengths), cfg.cutoff_len) if lengths else cfg.cutoff_len
    rows = cfg.per_device_train_batch_size * (2 if cfg.stage in ("rm", "dpo", "kto") else 1)  # chosen + rejected
    need = activation_bytes(getattr(model, "config", None), rows, length)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if torch.cuda.is_available():
        free = torch.cuda.mem_get_info()[0]
        where = "free on the GPU"
    else:
        import psutil

        free = psutil.virtual_memory().available
        where = "available"
    free -= 12 * trainable  # gradients and AdamW's two moments, in fp32, not allocated yet
    cfg.gradient_checkpointing = need > free / 2
    say(f"[tunekit] gradient checkpointing: {'on' if cfg.gradient_checkpointing else 'off'} (a batch's activations "
        f"need about {need / 2**30:.1f} GiB; {max(free, 0) / 2**30:.1f} GiB {where}; "
        "set gradient_checkpointing to choose)")


def only_known(cls, kwargs: dict) -> dict:
    """Keep the keywords that ``cls`` (a TrainingArguments subclass) accepts."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in kwargs.items() if k in names}


class PadCollator:
    """Right-pads ``input_ids`` (pad id), ``attention_mask`` (0) and ``labels`` (-100) to the longest row;
    packed rows have ``position_ids`` instead of an attention mask (padding gets positions 0, 1, ...,
    a sequence of its own that carries no loss)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(r["input_ids"]) for r in rows)
        if self.multiple:
            length = -(-length // self.multiple) * self.multiple
        batch = {}
        for key, pad in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("labels", IGNORE_INDEX)):
            if key in rows[0]:
                batch[key] = torch.tensor([list(r[key]) + [pad] * (length - len(r[key])) for r in rows])
        if "position_ids" in rows[0]:
            batch["position_ids"] = torch.tensor([list(r["position_ids"]) + list(range(length - len(r["input_ids"])))
                                                  for r in rows])
        return batch


def import_function(target: str, key: str):
    """The function a ``module:function`` path names (the working folder is on the path), or a one-line
    ``ConfigError`` naming ``key`` (ppo's ``reward_model``, grpo's ``reward_funcs``)."""
    module_name, _, name = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{key}={target!r} cannot be imported ({err}); give module:function of a module on the "
                          "path (the working folder counts)") from None
    if not callable(function):
        raise ConfigError(f"{key}={target!r} is not a function; give module:function")
    return function
