"""What keeps a run's work safe when something goes wrong: atomic saves, a stop on a NaN loss, Ctrl-C.

``SafeTraining`` is a mixin for a transformers (or trl) trainer class; ``safe(SFTTrainer)`` composes it
in front of a stage's trainer, so every stage gets the same three guarantees by subclassing:

- Whole or not at all: a checkpoint is written into ``checkpoint-N.tmp`` and renamed to
  ``checkpoint-N`` once complete; the final files are written into a staging folder and each is
  renamed over its place. A run killed at any moment (``kill -9``, a closed laptop) leaves only
  whole files under real names, and ``checkpoint-*.tmp`` leftovers that nothing reads as a checkpoint.
- A NaN or infinite loss stops training at once with a ``TrainingError`` naming the step, and
  weights that are no longer finite are never saved: the last checkpoint on disk stays good.
- Ctrl-C (SIGINT) asks for a clean stop at the end of the current step, with a checkpoint there;
  a second Ctrl-C aborts at once, keeping the checkpoints already written.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import threading
from pathlib import Path

import torch

from .distributed import say
from .errors import TrainingError
from .outputs import STAGING


def check_loss(loss: torch.Tensor, step: int) -> None:
    """A ``TrainingError`` when ``loss`` (of optimizer step ``step``) is NaN or infinite."""
    value = float(loss.detach().float().mean())
    if not math.isfinite(value):
        raise TrainingError(f"the loss became {value} at step {step}")


def check_weights(model, step: int) -> None:
    """A ``TrainingError`` when a trainable weight is NaN or infinite (they are then never saved)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and not torch.isfinite(param).all():
                raise TrainingError(f"the weights became NaN or infinite at step {step} ({name})")


class SafeTraining:
    """Mixin for a transformers ``Trainer`` (or a trl trainer): a loss check on every micro-batch, atomic
    checkpoints that are only written while the weights are finite, and Ctrl-C as a clean stop."""

    _staging: Path | None = None  # while a checkpoint is written: the folder it goes to first

    def train(self, *args, **kwargs):
        from .callbacks import StopCallback

        stopper = next((c for c in self.callback_handler.callbacks if isinstance(c, StopCallback)), None)
        with ctrl_c_stops(stopper):
            return super().train(*args, **kwargs)

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        check_loss(loss, self.state.global_step + 1)
        return loss

    def _get_output_dir(self, trial=None):
        # The Trainer writes <run_dir>/checkpoint-N: pointed at the staging folder, it writes it there.
        return str(self._staging) if self._staging is not None else super()._get_output_dir(trial=trial)

    def _save_checkpoint(self, model, trial, *args, **kwargs):
        check_weights(self.model, self.state.global_step)
        run_dir = Path(self._get_output_dir(trial=trial))
        name = f"checkpoint-{self.state.global_step}"
        staging = run_dir / (name + STAGING)
        if self.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staging = staging
        try:
            super()._save_checkpoint(model, trial, *args, **kwargs)
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()
        if self.is_world_process_zero():
            _publish_checkpoint(self, staging / name, run_dir / name)
        self.accelerator.wait_for_everyone()


@functools.cache
def safe(trainer_class: type, *mixins: type) -> type:
    """``trainer_class`` with ``SafeTraining`` (and a stage's own ``mixins``) in front: a subclass of the same
    name. Made when a stage is built, since the trainer classes are imported only then (after the backend)."""
    return type(trainer_class.__name__, (SafeTraining, *mixins, trainer_class), {})


def _publish_checkpoint(trainer, written: Path, final: Path) -> None:
    """Rename a whole checkpoint into place, then drop the oldest beyond ``save_total_limit``."""
    from transformers.trainer_utils import rotate_checkpoints

    if trainer.state.best_model_checkpoint == str(written):  # the staging path was recorded as the best one
        trainer.state.best_model_checkpoint = str(final)
        trainer.state.save_to_json(str(written / "trainer_state.json"))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(written, final)
    shutil.rmtree(written.parent, ignore_errors=True)
    rotate_checkpoints(output_dir=str(final.parent), save_total_limit=trainer.args.save_total_limit,
                       best_model_checkpoint=trainer.state.best_model_checkpoint, use_mtime=False)


def save_outputs(trainer, tokenizer, output_dir: str, metrics: dict) -> None:
    """The final model (or adapter), tokenizer, ``trainer_state.json`` and ``all_results.json``,
    written into a staging folder first and then renamed file by file over the old ones."""
    check_weights(trainer.model, trainer.state.global_step)
    out = Path(output_dir)
    staging = out / f".saving{STAGING}"
    primary = getattr(trainer, "is_world_process_zero", lambda: True)()
    if primary:  # only the process that writes clears the folder: another one, later, removed what it was writing
        shutil.rmtree(staging, ignore_errors=True)
    if getattr(trainer, "accelerator", None) is not None:
        trainer.accelerator.wait_for_everyone()  # cleared before any process saves (sharded saves write from each)
    trainer.save_model(str(staging))
    if primary:
        tokenizer.save_pretrained(str(staging))
        trainer.state.save_to_json(str(staging / "trainer_state.json"))
        (staging / "all_results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = out / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def ctrl_c_stops(stopper):
    """While inside, the first SIGINT calls ``stopper.stop()`` (a clean stop at the end of the step);
    a second raises ``KeyboardInterrupt``. Only in the main thread, where Python delivers signals."""
    if stopper is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum, frame):
        if stopper.requested.is_set():
            raise KeyboardInterrupt
        stopper.stop()
        say("\n[tunekit] stopping at the end of this step, with a checkpoint there "
            "(press Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
