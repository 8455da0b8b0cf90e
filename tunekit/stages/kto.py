"""kto: Kahneman-Tversky optimisation on unpaired answers labelled good or bad, with trl's ``KTOTrainer``.

Keys: ``dataset`` (a KTO set: a conversation plus a boolean ``kto_tag`` column; ``kto_en_demo``),
``pref_beta`` (beta), ``kto_chosen_weight`` / ``kto_rejected_weight`` (trl's desirable and
undesirable weights: raise the rarer class's weight on unbalanced data), ``cutoff_len``.
``per_device_train_batch_size`` must be at least 2: the KL term compares each answer with the
other prompts in the batch. The reference is the model with the LoRA adapter disabled (or the
starting adapter, or a frozen copy for full/freeze). ``pref_ftx`` is not supported by trl's KTO.
Logged: ``kl``, ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``logps/*``.
"""

from __future__ import annotations

import datasets

from ..config import Config, warn
from ..data import load_rows
from .base import only_known, training_kwargs
from .preference import precompute_reference, split_fresh_adapter

METRICS = ("loss", "kl", "rewards/margins", "rewards/chosen", "rewards/rejected", "eval_loss", "eval_rewards/margins")


def prepare(cfg: Config, tokenizer) -> datasets.DatasetDict:
    """Unpaired rows: ``prompt`` (messages), ``completion`` (one assistant message) and ``label``."""
    rows = load_rows(cfg, "unpaired", tokenizer)
    labels = rows["train"]["label"]
    if all(labels) or not any(labels):
        kind = "good (true)" if all(labels) else "bad (false)"
        warn(f"dataset {cfg.dataset!r} has only {kind} answers; KTO learns most from both kinds")
    return rows


def build(cfg: Config, model, tokenizer, data: datasets.DatasetDict, callbacks: list):
    from trl import KTOConfig, KTOTrainer

    if cfg.pref_ftx > 0:
        warn(f"pref_ftx={cfg.pref_ftx} is not supported by trl's KTO trainer; ignored")
    args = KTOConfig(**only_known(KTOConfig, training_kwargs(cfg, "eval" in data)), beta=cfg.pref_beta,
                     desirable_weight=cfg.kto_chosen_weight, undesirable_weight=cfg.kto_rejected_weight,
                     max_length=cfg.cutoff_len,
                     precompute_ref_log_probs=precompute_reference(cfg, len(data["train"])))
    model, peft_config = split_fresh_adapter(cfg, model)
    return KTOTrainer(model=model, ref_model=None, args=args, peft_config=peft_config,
                      train_dataset=data["train"], eval_dataset=data.get("eval"), processing_class=tokenizer,
                      callbacks=callbacks)
