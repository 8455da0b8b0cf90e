"""The metric stream: ``trainer_log.jsonl`` (one JSON line per log step), console lines, and plots.

Panels follow training with their own ``transformers.TrainerCallback``; the log file is what the
plots and any later reader use.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from .outputs import LOG_NAME

_ALIASES = {"learning_rate": "lr"}  # LLaMA-Factory's trainer_log.jsonl calls it lr: both names are written
_SKIP = ("total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second")


class LogCallback(TrainerCallback):
    """Appends one line per logging step (and the last step) to ``output_dir/trainer_log.jsonl``:
    ``step``, ``total_steps``, ``loss``, ``learning_rate`` (and ``lr``), ``epoch``, elapsed seconds and every other metric."""

    def __init__(self, output_dir: str | os.PathLike, resume_step: int = 0):
        self.path = Path(output_dir) / LOG_NAME
        self.resume_step = resume_step
        self.start = time.time()
        self.history: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= self.resume_step] if self.resume_step else []
        _write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.history = kept
        self.start = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:  # always log the last step, so short runs show where they ended
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "total_steps": state.max_steps}
        for key, value in logs.items():
            if key in _SKIP:
                continue
            record[key] = _clean(value)
            if key in _ALIASES:
                record[_ALIASES[key]] = record[key]
        record["elapsed"] = round(time.time() - self.start, 4)
        self.history.append(record)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class StopCallback(TrainerCallback):
    """Ends training cleanly at the next optimizer step once ``stop()`` is called, from any thread
    (a panel's Stop button, a signal handler): a checkpoint is saved there, so the run can resume."""

    def __init__(self, on_request=None):
        self.requested = threading.Event()
        self.on_request = on_request  # called once, in the thread that asks (a panel shows "stopping")

    def stop(self) -> None:
        if not self.requested.is_set():
            self.requested.set()
            if self.on_request is not None:
                self.on_request()

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested.is_set() and state.global_step < state.max_steps:
            control.should_training_stop = True
            control.should_save = True
            control.should_log = True


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a ``trainer_log.jsonl`` (a file path or the output folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
    return records


def metric_series(records: list[dict], key: str) -> tuple[list, list]:
    """(steps, values) of the records that logged ``key`` as a number."""
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [step for step, _ in points], [value for _, value in points]


def expand_keys(records: list[dict], keys) -> list[str]:
    """``keys`` with each pattern (``rewards/*/mean``) replaced by the logged keys it matches, in log order."""
    logged = list(dict.fromkeys(key for record in records for key in record))
    return [match for key in keys for match in (fnmatch.filter(logged, key) if "*" in key else [key])]


def _smooth(values: list[float]) -> list[float]:
    """Exponential moving average whose weight grows with the number of points (a few points stay raw)."""
    weight = 0.9 * (1 - math.exp(-len(values) / 100))
    out, last = [], values[0]
    for value in values:
        last = last * weight + value * (1 - weight)
        out.append(last)
    return out


def plot_metrics(output_dir: str | os.PathLike, keys: list[str]) -> list[Path]:
    """One PNG per metric found in the log: ``training_loss.png``, ``training_eval_loss.png``, ...

    Each shows the raw points (markers, so a run with two log steps still reads) and, from ten
    points on, a smoothed line. A key with ``*`` stands for every logged key it matches
    (``rewards/*/mean``: one plot per reward function).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    records = read_log(output_dir)
    written = []
    for key in expand_keys(records, keys):
        steps, values = metric_series(records, key)
        if not steps:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        ax.plot(steps, values, marker="o", markersize=3, alpha=0.5 if len(steps) >= 10 else 1.0, label="raw")
        if len(steps) >= 10:
            ax.plot(steps, _smooth(values), label="smoothed")
            ax.legend()
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(f"{key} of {Path(output_dir).name}")
        ax.grid(alpha=0.3)
        if len(steps) == 1:
            ax.set_xlim(steps[0] - 1, steps[0] + 1)
        path = Path(output_dir) / f"training_{key.replace('/', '_')}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
