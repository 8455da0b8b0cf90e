"""tunekit: train causal language models through every stage, from notebooks, the CLI or a launcher.

    import tunekit as tk
    cfg = tk.load_config("examples/sft_lora.yaml", max_steps=30)
    model, tokenizer = tk.load_model(cfg)
    data = tk.load_data(cfg, tokenizer)
    result = tk.train(cfg)
    tk.generate(result.model, result.tokenizer, ["Who are you?"], max_new_tokens=64)

The config and the run recipe (``run.py``: plan -> build -> fit) are imported at once; the rest (torch,
transformers, trl) on first use, so that ``tunekit train bad.yaml`` answers at once.
"""

import importlib
import logging

from .config import Config
from .errors import ConfigError, DataError, TrainingError, TunekitError
from .run import load_config

__version__ = "0.1.0"

# bitsandbytes (imported by peft and transformers whenever it is installed) logs, on a CPU with AVX-512 BF16, that
# an optional 4-bit kernel package is missing. tunekit runs no 4-bit model on a CPU, and the line would come first
# in every one-line error and notebook; its other warnings still show.
BNB_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda record: not record.getMessage().startswith(
    BNB_KERNEL_NOTICE))

_LAZY = {
    "load_model": "models", "load_tokenizer": "models", "load_for_inference": "models",
    "load_reward_model": "models", "score": "models",
    "load_data": "run", "train": "run", "TrainResult": "run", "plan": "run", "build": "run", "fit": "run",
    "STAGES": "stages",
    "load_rows": "data", "generate": "generation", "read_log": "callbacks", "plot_metrics": "callbacks",
    "StopCallback": "callbacks", "evaluate": "evaluation", "EvalResult": "evaluation",
    "smoke": "notebook", "trained": "notebook", "find_or_train_reward_model": "notebook",
    "where_things_are": "notebook", "model_shape": "notebook", "find_or_train": "notebook",
    "teacher_answers": "notebook",
}
__all__ = ["Config", "ConfigError", "DataError", "TrainingError", "TunekitError", "load_config", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'tunekit' has no attribute {name!r}")
