"""What every stage shares: TrainingArguments from the config, and padding collation."""

from __future__ import annotations

from dataclasses import fields

import torch

from ..config import Config, comma_list
from ..data import IGNORE_INDEX


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
        gradient_checkpointing=cfg.gradient_checkpointing,
        ddp_timeout=cfg.ddp_timeout,
        deepspeed=cfg.deepspeed,
        report_to=comma_list(cfg.report_to) or "none",
        dataloader_num_workers=cfg.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        # without CUDA, a multi-process launch (torchrun, accelerate launch) is data-parallel over gloo
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
    ) | cfg.training_args


def only_known(cls, kwargs: dict) -> dict:
    """Keep the keywords that ``cls`` (a TrainingArguments subclass) accepts."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in kwargs.items() if k in names}


class PadCollator:
    """Right-pads ``input_ids`` (pad id), ``attention_mask`` (0) and ``labels`` (-100) to the longest row."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(r["input_ids"]) for r in rows)
        if self.multiple:
            length = -(-length // self.multiple) * self.multiple
        batch = {}
        for key, pad in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("labels", IGNORE_INDEX)):
            batch[key] = torch.tensor([list(r[key]) + [pad] * (length - len(r[key])) for r in rows])
        return batch
