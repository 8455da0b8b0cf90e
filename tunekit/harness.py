"""Benchmarks through EleutherAI's lm-evaluation-harness (the ``harness`` extra), on a model already loaded.

    from tunekit.models import load_for_inference
    from tunekit.harness import run_tasks
    model, tokenizer = load_for_inference("HuggingFaceTB/SmolLM2-135M", adapter="saves/sft")
    run_tasks(model, tokenizer, ["arc_easy"], limit=100)   # {"arc_easy/acc": ..., "arc_easy/acc_norm": ...}
    run_tasks(model, tokenizer, "tunekit_mc")               # tunekit's own offline task, no hub needed

Any lm-eval task name works (its data come from the hub); the tasks in ``tunekit/data/harness`` are
found as well. lm_eval is imported on first call, so importing tunekit stays quick.
"""

from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path

from .config import comma_list
from .errors import ConfigError

TASKS_DIR = Path(__file__).resolve().parent / "data" / "harness"
INSTALL_HINT = 'pip install "tunekit[harness]"'


def bundled_tasks() -> list[str]:
    """Names of tunekit's own lm-eval tasks (one YAML each in ``tunekit/data/harness``)."""
    return sorted(path.stem for path in TASKS_DIR.glob("*.yaml"))


def _import_lm_eval():
    try:
        import lm_eval
        from lm_eval.api.model import LM
        from lm_eval.models.huggingface import HFLM
    except ImportError as err:
        raise ConfigError(f"the benchmark harness needs lm-eval ({err}): {INSTALL_HINT}") from None
    return lm_eval, LM, HFLM


@functools.lru_cache(maxsize=2)
def _task_manager(include_defaults: bool):
    """lm-eval's task index with tunekit's folder added; indexing lm-eval's own tasks takes seconds,
    so it is skipped when only bundled tasks are asked for."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=include_defaults)


def _task_names(tasks: list[str] | str) -> list[str]:
    names = comma_list(tasks if isinstance(tasks, str) else ",".join(map(str, tasks)))
    if not names:
        raise ConfigError("run_tasks: no task given (e.g. tasks=['arc_easy'] or 'tunekit_mc')")
    return names


def _flatten(results: dict) -> dict[str, float]:
    """{"task": {"acc,none": 0.5, "acc_stderr,none": 0.1, "alias": ...}} -> {"task/acc": 0.5,
    "task/acc_stderr": 0.1}; a filter other than "none" is kept as a suffix ("gsm8k/exact_match/strict-match").
    Entries that are not numbers (aliases, an "N/A" stderr) are left out."""
    flat: dict[str, float] = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            metric, _, filt = key.partition(",")
            flat[f"{task}/{metric}" + ("" if filt in ("", "none") else f"/{filt}")] = float(value)
    return flat


def run_tasks(model, tokenizer, tasks: list[str] | str, limit: int | None = None,
              batch_size: int = 8) -> dict[str, float]:
    """Run lm-eval ``tasks`` (names, or one comma-separated string) on a loaded transformers model (a
    peft model with its adapter works as is) and return ``{"task/metric": value}``, stderrs as
    ``"task/metric_stderr"``. ``limit`` caps the examples per task (lm-eval's ``--limit``). ``model`` may
    also be an lm-eval ``LM`` already built (then ``tokenizer`` is ignored)."""
    lm_eval, LM, HFLM = _import_lm_eval()
    names = _task_names(tasks)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ConfigError(f"run_tasks: limit must be a whole number >= 1 or None, not {limit!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"run_tasks: batch_size must be a whole number >= 1, not {batch_size!r}")

    manager = _task_manager(include_defaults=not set(names) <= set(bundled_tasks()))
    known = set(manager.all_tasks)
    for name in names:
        if name not in known and not (name.endswith(".yaml") and Path(name).is_file()):
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown lm-eval task {name!r}{hint}; tunekit's own: {', '.join(bundled_tasks())}")

    if isinstance(model, LM):
        lm, was_training = model, None
    else:
        if tokenizer is None:
            raise ConfigError("run_tasks: a tokenizer is needed with a transformers model")
        was_training = getattr(model, "training", None)
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)  # puts the model in eval mode
    try:
        out = lm_eval.simple_evaluate(model=lm, tasks=names, limit=limit, task_manager=manager,
                                      log_samples=False, batch_size=batch_size)
    finally:
        if was_training:
            model.train()
    return _flatten(out["results"]) if out else {}  # None on a rank other than 0
