"""Shared helpers: every test trains the tiny random Llama, in a temporary folder."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_tool(name: str):
    """A script of ``tools/`` (not a package) as a module, e.g. ``load_tool("workshop_check").with_parameters``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny(tmp_path):
    """A config dict for the tiny model with a fresh output folder; update it per test."""
    return {
        "model_name_or_path": "tiny-random-llama",
        "stage": "sft",
        "dataset": "identity",
        "output_dir": str(tmp_path / "out"),
        "cutoff_len": 128,
        "per_device_train_batch_size": 4,
        "max_steps": 4,
        "logging_steps": 1,
        "save_steps": 1000,
        "learning_rate": 1e-3,
        "report_to": "none",
    }


def write_dataset(folder: Path, name: str, rows, info: dict, suffix: str = ".json") -> Path:
    """Write rows and register them in folder/dataset_info.json (merged with what is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    info_path = folder / "dataset_info.json"
    registry = json.loads(info_path.read_text()) if info_path.exists() else {}
    registry[name] = {"file_name": path.name, **info}
    info_path.write_text(json.dumps(registry))
    return path


def run_cli(*args, cwd=None, timeout=600):
    """Run `tunekit ...` in a fresh process; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "tunekit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
