"""The output folder: what a run writes there, and the rules that keep earlier results safe.

- A folder holding results is never written over unless ``overwrite_output_dir`` (then the old run's
  files are removed, and the log says which) or ``resume_from_checkpoint``.
- Checkpoints are ``checkpoint-N`` folders; one is written as ``checkpoint-N.tmp`` and renamed when
  whole (``safety.py``), so a ``.tmp`` folder is never taken for a checkpoint and is removed by the next run.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .config import Config
from .distributed import say
from .errors import ConfigError

STAGING = ".tmp"  # checkpoint-N.tmp: never matched by checkpoint-(\d+)$, so never taken for a checkpoint
LOG_NAME = "trainer_log.jsonl"
# What a run writes into output_dir: removed before a run with overwrite_output_dir: true.
OUTPUTS = ("checkpoint-*", "training_*.png", "*_results.json", "trainer_state.json", "adapter_*",
           "model*.safetensors", "pytorch_model*.bin", "config.json", "generation_config.json", "tokenizer*",
           "special_tokens_map.json", "chat_template.jinja", "training_args.bin", "README.md",
           "value_head.safetensors", "pissa_init", "pissa_converted", "generated_predictions.jsonl",
           "eval", "training_args.yaml", LOG_NAME)  # eval/: tk.evaluate's before/after of the run
CONFIG_NAME = "training_args.yaml"  # the run's config, as LLaMA-Factory's web UI saves it
MEMORY_ROWS = "dataset"  # rows given in memory (tk.train(data=...)), written for the config to name


def save_results(output_dir: str | os.PathLike, split: str, metrics: dict) -> None:
    """``{split}_results.json`` (eval, predict), and the same keys merged into ``all_results.json``, as the
    transformers Trainer's ``save_metrics`` writes them."""
    import json

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}_results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    merged = folder / "all_results.json"
    everything = json.loads(merged.read_text()) if merged.is_file() else {}
    merged.write_text(json.dumps(everything | metrics, indent=2, sort_keys=True) + "\n")


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step of a ``checkpoint-N`` folder (0 for any other path)."""
    match = re.search(r"checkpoint-(\d+)$", str(path).rstrip("/"))
    return int(match.group(1)) if match else 0


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The ``checkpoint-N`` folder with the highest N in ``output_dir``, if any."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and checkpoint_step(p)]
    return str(max(folders, key=checkpoint_step)) if folders else None


def check_output_dir(cfg: Config) -> None:
    """Refuse to write over results unless ``overwrite_output_dir`` (or when resuming). A run that does not train
    only adds its result files (``eval_results.json``, ``predict_results.json``, ``generated_predictions.jsonl``),
    so it may write into any folder, the trained one included."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir={cfg.output_dir!r} is a file, not a folder; choose another output_dir")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"output_dir={cfg.output_dir!r} cannot be written ({existing} is not a writable folder); "
                          "choose another output_dir")
    if not cfg.do_train:  # evaluation and prediction write their own result files and remove nothing
        return
    if not out.is_dir() or not any(out.iterdir()) or cfg.overwrite_output_dir or cfg.resume_from_checkpoint:
        return
    last = last_checkpoint(out)
    hint = f", or resume_from_checkpoint: true to continue from {Path(last).name}" if last else ""
    raise ConfigError(
        f"output_dir={cfg.output_dir!r} already holds results; set overwrite_output_dir: true to replace them, "
        f"choose another output_dir{hint}"
    )


def resume_point(cfg: Config) -> str | None:
    """The checkpoint ``resume_from_checkpoint`` names (``true``: the last one), checked to exist and to
    leave steps to train: a checkpoint at or past ``max_steps`` would 'resume' into a run that trains nothing."""
    value = cfg.resume_from_checkpoint
    if value in (None, False):
        return None
    if value is True:
        found = last_checkpoint(cfg.output_dir)
        if found is None:
            raise ConfigError(
                f"resume_from_checkpoint: true, but output_dir={cfg.output_dir!r} has no checkpoint-* folder; "
                "set save_steps so that checkpoints are written, or drop resume_from_checkpoint"
            )
    elif not Path(value).exists():
        raise ConfigError(f"resume_from_checkpoint={value!r} does not exist; give a checkpoint-N folder of a run, "
                          "or true for the last one in output_dir")
    elif not (Path(value) / "trainer_state.json").is_file():
        raise ConfigError(f"resume_from_checkpoint={value!r} is not a checkpoint folder (no trainer_state.json); "
                          "give a checkpoint-N folder of a run, or true for the last one in output_dir")
    found = found if value is True else str(value)
    if cfg.max_steps > 0 and checkpoint_step(found) >= cfg.max_steps:
        raise ConfigError(
            f"resume_from_checkpoint={found!r} is at step {checkpoint_step(found)} and max_steps={cfg.max_steps}: "
            "nothing is left to train; raise max_steps, or drop resume_from_checkpoint to start again"
        )
    return found


def prepare_output_dir(cfg: Config, resume: str | None) -> None:
    """Start clean when ``overwrite_output_dir`` allows it, saying what goes; drop half-written checkpoints."""
    out = Path(cfg.output_dir)
    partial = remove_partial_saves(out) if out.is_dir() else []
    if partial:
        say(f"[tunekit] removed {', '.join(partial)}: half-written by a run killed while saving")
    if resume:
        say(f"[tunekit] resuming from {resume}")
        return
    found = sorted({p.name for pattern in OUTPUTS for p in out.glob(pattern)}) if out.is_dir() else []
    if found and cfg.overwrite_output_dir:
        shown = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        say(f"[tunekit] overwrite_output_dir: removing the previous run from {cfg.output_dir} ({shown}); "
            "training starts from the base model")
        for pattern in OUTPUTS:
            for path in out.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def save_config(cfg: Config) -> Path:
    """``training_args.yaml``: the run's config, from which ``tunekit train`` repeats it. Rows given in memory are
    written beside it (``dataset/*.jsonl``) and named in its ``dataset`` / ``eval_dataset``."""
    import dataclasses

    from .data.sources import write_memory_rows

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = write_memory_rows([*cfg.datasets, *cfg.eval_datasets], out / MEMORY_ROWS)
    named = {key: ",".join(written.get(name, name) for name in names)
             for key, names in (("dataset", cfg.datasets), ("eval_dataset", cfg.eval_datasets)) if names}
    note = ("# the rows of this run were given in memory (tk.train(data=...)); they are written to "
            f"{out / MEMORY_ROWS}, and dataset names them there\n" if written else "")
    path = out / CONFIG_NAME
    path.write_text(f"# the config of the run in this folder: tunekit train {path}\n{note}"
                    + dataclasses.replace(cfg, **named).to_yaml(keep=("model_name_or_path", "stage", "do_train", "finetuning_type",
                                                                      "dataset", "output_dir")), encoding="utf-8")
    return path


def remove_partial_saves(output_dir: str | os.PathLike) -> list[str]:
    """Delete the ``*.tmp`` staging folders a run killed while saving left behind; returns their names."""
    found = sorted(p for p in Path(output_dir).glob(f"*{STAGING}") if p.is_dir())
    for folder in found:
        shutil.rmtree(folder, ignore_errors=True)
    return [f.name for f in found]


def last_checkpoint_words(cfg: Config) -> str:
    """Where a stopped or failed run can pick up, in words."""
    last = last_checkpoint(cfg.output_dir)
    if last is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint is {last} (resume_from_checkpoint: true)"
