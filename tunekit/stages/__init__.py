"""The stages: one module each, each ending with its ``STAGE`` description (``base.Stage``).

``STAGES`` is the one table that everything else reads: the run recipe (``run.py``), the config rules,
the backend and launch checks, the panels and the bench. Adding a stage is one new module here, one
line in this table, its test and its notebook.
"""

from __future__ import annotations

from ..config import Config, not_one_of
from . import distill, dpo, grpo, kto, ppo, pt, rloo, rm, sft
from .base import Parts, Stage

STAGES: dict[str, Stage] = {s.name: s for s in (pt.STAGE, sft.STAGE, rm.STAGE, ppo.STAGE, dpo.STAGE, kto.STAGE,
                                                grpo.STAGE, rloo.STAGE, distill.STAGE)}


def stage_of(cfg: Config) -> Stage:
    """The description of ``cfg``'s stage, or a ``ConfigError`` naming the stages there are."""
    if cfg.stage not in STAGES:
        raise not_one_of("stage", cfg.stage, STAGES)
    return STAGES[cfg.stage]


__all__ = ["STAGES", "Parts", "Stage", "stage_of"]
