"""Multi-process launches (``torchrun``, ``accelerate launch``): who is who, and who speaks.

The Trainer does the data-parallel work itself (DDP; gloo on CPU, see ``stages/base.py``); tunekit only
makes sure that one process (rank 0) prints and writes, and that a stage that cannot run data-parallel
says so before anything loads.
"""

from __future__ import annotations

import os

from .config import Config, ConfigError

SINGLE_PROCESS_STAGES = ("ppo",)  # tunekit's own PPO loop has no data-parallel path


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a launch, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def say(message: str) -> None:
    """Print ``message`` from rank 0 only (every rank runs the same code)."""
    if is_main_process():
        print(message, flush=True)


def check_launch(cfg: Config) -> None:
    if world_size() > 1 and cfg.stage in SINGLE_PROCESS_STAGES:
        raise ConfigError(
            f"stage={cfg.stage!r} runs in a single process, and this launch has {world_size()} (WORLD_SIZE); "
            f"run it with plain `tunekit train`, not torchrun or accelerate launch"
        )
