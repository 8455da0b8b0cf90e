"""kto: Kahneman-Tversky optimisation on unpaired answers labelled good or bad, with trl's ``KTOTrainer``.

Keys: ``dataset`` (a KTO set: a conversation plus a boolean ``kto_tag`` column; ``kto_en_demo``),
``pref_beta`` (beta), ``kto_chosen_weight`` / ``kto_rejected_weight`` (trl's desirable and
undesirable weights: raise the rarer class's weight on unbalanced data), ``cutoff_len``.
A batch needs two rows: the KL term compares each answer with the other answers of its batch
(``per_device_train_batch_size: 1``, as in LLaMA-Factory's example, trains with 2 and half the
accumulation). The reference is the model with the LoRA adapter disabled (or the starting adapter,
or a frozen copy for full/freeze). ``pref_ftx`` is not supported by trl's KTO.
Logged: ``kl``, ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``logps/*``.
"""

from __future__ import annotations

from ..config import Config
from ..data import load_rows, views
from ..errors import warn
from .base import Parts, Stage, only_known
from .preference import Pretokenized, as_tokens, precompute_reference, split_fresh_adapter


def prepare(cfg: Config, tokenizer):
    """Unpaired rows: ``prompt`` (messages), ``completion`` (one assistant message) and ``label``."""
    rows = load_rows(cfg, "unpaired", tokenizer)
    labels = next(iter(rows.values()))["label"]  # the training rows (the held-out ones alone when not training)
    if all(labels) or not any(labels):
        kind = "good (true)" if all(labels) else "bad (false)"
        warn(f"dataset {cfg.dataset!r} has only {kind} answers; KTO learns most from both kinds")
    return rows


def at_least_two_per_batch(args: dict) -> dict:
    """trl's KL term compares each answer with the other answers of its batch, so a batch needs two rows: a
    LLaMA-Factory config with per_device_train_batch_size: 1 (its kto example) trains with 2, and half the
    gradient accumulation, saying so."""
    if args["per_device_train_batch_size"] >= 2:
        return args
    before = args["gradient_accumulation_steps"]
    after = max(1, before // 2)
    warn(f"stage=kto compares each answer with the other answers of its batch (the KL term), so a batch needs 2 "
         f"rows: per_device_train_batch_size 1 -> 2 and gradient_accumulation_steps {before} -> {after} "
         f"({2 * after} rows per step instead of {before})")
    return {**args, "per_device_train_batch_size": 2, "gradient_accumulation_steps": after}


def build(p: Parts):
    from trl import KTOConfig, KTOTrainer

    from ..safety import safe

    cfg = p.cfg
    if cfg.pref_ftx > 0:
        warn(f"pref_ftx={cfg.pref_ftx} is not supported by trl's KTO trainer; ignored")
    args = KTOConfig(**only_known(KTOConfig, at_least_two_per_batch(p.args)), beta=cfg.pref_beta,
                     desirable_weight=cfg.kto_chosen_weight, undesirable_weight=cfg.kto_rejected_weight,
                     max_length=cfg.cutoff_len,
                     precompute_ref_log_probs=precompute_reference(cfg, len(p.data.get("train") or [])))
    model, peft_config = split_fresh_adapter(cfg, p.model)
    data = as_tokens(p.tokenizer, p.data)  # rendered by tunekit: the prompt as at inference, then the answer
    return safe(KTOTrainer, Pretokenized, *p.mixins)(
        model=model, ref_model=None, args=args, peft_config=peft_config, train_dataset=data.get("train"),
        eval_dataset=data.get("eval"), processing_class=p.tokenizer, callbacks=p.callbacks)


STAGE = Stage(
    name="kto", rows="unpaired", prepare=prepare, build=build, show=views.unpaired, reference=True,
    scored_per_row=1,  # another prompt's answer, scored without gradients for the KL term
    fused_lm_head=lambda cfg: True, config_keys=("pref_beta",),
    metrics=("loss", "kl", "rewards/margins", "rewards/chosen", "rewards/rejected", "eval_loss",
             "eval_rewards/margins"),
    chart=("rewards/margins", "kl", "eval_rewards/margins"),
)
