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

from ..config import Config
from ..data import load_rows, views
from ..errors import ConfigError, warn
from .base import Parts, Stage, only_known
from .preference import precompute_reference, split_fresh_adapter


def check(cfg: Config) -> None:
    if cfg.do_train and cfg.per_device_train_batch_size < 2:
        raise ConfigError(
            f"stage=kto needs per_device_train_batch_size of at least 2 (got {cfg.per_device_train_batch_size}): "
            "its KL term compares each answer with the other prompts of the same batch; "
            "gradient_accumulation_steps does not count"
        )


def prepare(cfg: Config, tokenizer):
    """Unpaired rows: ``prompt`` (messages), ``completion`` (one assistant message) and ``label``."""
    rows = load_rows(cfg, "unpaired", tokenizer)
    labels = rows["train"]["label"]
    if all(labels) or not any(labels):
        kind = "good (true)" if all(labels) else "bad (false)"
        warn(f"dataset {cfg.dataset!r} has only {kind} answers; KTO learns most from both kinds")
    return rows


def build(p: Parts):
    from trl import KTOConfig, KTOTrainer

    from ..safety import safe

    cfg = p.cfg
    if cfg.pref_ftx > 0:
        warn(f"pref_ftx={cfg.pref_ftx} is not supported by trl's KTO trainer; ignored")
    args = KTOConfig(**only_known(KTOConfig, p.args), beta=cfg.pref_beta,
                     desirable_weight=cfg.kto_chosen_weight, undesirable_weight=cfg.kto_rejected_weight,
                     max_length=cfg.cutoff_len,
                     precompute_ref_log_probs=precompute_reference(cfg, len(p.data["train"])))
    model, peft_config = split_fresh_adapter(cfg, p.model)
    return safe(KTOTrainer, *p.mixins)(model=model, ref_model=None, args=args, peft_config=peft_config,
                            train_dataset=p.data["train"], eval_dataset=p.data.get("eval"),
                            processing_class=p.tokenizer, callbacks=p.callbacks)


STAGE = Stage(
    name="kto", rows="unpaired", prepare=prepare, build=build, show=views.unpaired, check=check, reference=True,
    sequences_per_row=2,  # each answer, and another prompt's answer for the KL term
    fused_lm_head=lambda cfg: True, config_keys=("pref_beta",),
    metrics=("loss", "kl", "rewards/margins", "rewards/chosen", "rewards/rejected", "eval_loss",
             "eval_rewards/margins"),
    chart=("rewards/margins", "kl", "eval_rewards/margins"),
)
