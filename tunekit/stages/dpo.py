"""dpo: direct preference optimisation, and its reference-free relatives ORPO and SimPO.

Keys: ``dataset`` (a preference set; ``dpo_en_demo``), ``pref_loss``:
- ``sigmoid`` (DPO), ``hinge``, ``ipo``: trl ``DPOTrainer``, with ``pref_beta`` as beta and a
  reference model (LoRA: the adapter disabled, or the starting adapter; full/freeze: a frozen copy);
- ``orpo``: ``trl.experimental.orpo``, ``pref_beta`` as ORPO's lambda (its SFT term is built in);
- ``simpo``: ``trl.experimental.cpo`` with ``loss_type="simpo"``, ``simpo_gamma``, ``pref_beta``.
``pref_ftx`` adds the SFT (NLL) term on the chosen answers: DPO's ``sft`` loss with that weight,
SimPO's ``cpo_alpha``; ORPO always has it (``pref_ftx`` is not used there).
``precompute_ref_log_probs`` (sigmoid/hinge/ipo): the reference's log-probs computed once per row and
cached; by default on when rows are seen more than once. ``cutoff_len`` is the longest prompt + answer. Logged: ``rewards/chosen``, ``rewards/rejected``,
``rewards/accuracies``, ``rewards/margins``, ``logps/chosen``, ``logps/rejected``.
"""

from __future__ import annotations

import os

from ..config import Config
from ..data import load_rows, views
from .base import Parts, Stage, only_known
from .preference import Pretokenized, as_texts, as_tokens, precompute_reference, split_fresh_adapter

REFERENCE_FREE = ("orpo", "simpo")  # pref_loss values trained without a reference model


def prepare(cfg: Config, tokenizer):
    """Preference rows: ``prompt`` (messages), ``chosen`` and ``rejected`` (one assistant message each)."""
    return load_rows(cfg, "pairwise", tokenizer)


def build(p: Parts):
    from ..safety import safe

    cfg = p.cfg
    # rendered by tunekit (rendering.py): token ids for trl's DPO, text for its ORPO and CPO (which take text)
    data = as_texts(p.tokenizer, p.data) if cfg.pref_loss in REFERENCE_FREE else as_tokens(p.tokenizer, p.data)
    common = dict(train_dataset=data["train"], eval_dataset=data.get("eval"), processing_class=p.tokenizer,
                  callbacks=p.callbacks)
    if cfg.pref_loss in REFERENCE_FREE:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # no warning wall in notebooks
        if cfg.pref_loss == "orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            args = ORPOConfig(**only_known(ORPOConfig, p.args), beta=cfg.pref_beta, max_length=cfg.cutoff_len)
            return safe(ORPOTrainer, *p.mixins)(model=p.model, args=args, **common)
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(**only_known(CPOConfig, p.args), loss_type="simpo", cpo_alpha=cfg.pref_ftx,
                         simpo_gamma=cfg.simpo_gamma, beta=cfg.pref_beta, max_length=cfg.cutoff_len)
        return safe(CPOTrainer, *p.mixins)(model=p.model, args=args, **common)

    from trl import DPOConfig, DPOTrainer

    losses, weights = [cfg.pref_loss], [1.0]
    if cfg.pref_ftx > 0:
        losses.append("sft")
        weights.append(cfg.pref_ftx)
    args = DPOConfig(**only_known(DPOConfig, p.args), beta=cfg.pref_beta, loss_type=losses,
                     loss_weights=weights if len(losses) > 1 else None, max_length=cfg.cutoff_len,
                     precompute_ref_log_probs=precompute_reference(cfg, len(p.data["train"])))
    model, peft_config = split_fresh_adapter(cfg, p.model)
    return safe(DPOTrainer, Pretokenized, *p.mixins)(model=model, ref_model=None, args=args, peft_config=peft_config, **common)


STAGE = Stage(
    name="dpo", rows="pairwise", prepare=prepare, build=build, show=views.pairwise, reference=True,
    sequences_per_row=2, config_keys=("pref_beta", "pref_loss"),
    fused_lm_head=lambda cfg: cfg.pref_loss not in REFERENCE_FREE,  # trl's DPOTrainer; ORPO and SimPO are not
    metrics=("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected",
             "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"),
    chart=("rewards/accuracies", "rewards/margins", "eval_rewards/margins"),
)
