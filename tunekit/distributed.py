"""Multi-process launches (``torchrun``, ``accelerate launch``): who is who, and who speaks.

The Trainer does the data-parallel work itself (DDP; gloo on CPU, see ``run.py``); tunekit only makes
sure that one process (rank 0) prints and writes. Whether a stage can run data-parallel is said by the
stage (``Stage.multi_process``), and checked when the run is planned.
"""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a launch, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def say(message: str) -> None:
    """Print ``message`` from rank 0 only (every rank runs the same code)."""
    if is_main_process():
        print(message, flush=True)
