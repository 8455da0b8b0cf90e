"""tunekit: train causal language models through every stage, from notebooks, the CLI or a launcher.

    import tunekit as tk
    cfg = tk.load_config("examples/sft_lora.yaml", max_steps=30)
    model, tokenizer = tk.load_model(cfg)
    data = tk.load_data(cfg, tokenizer)
    result = tk.train(cfg)
    tk.generate(result.model, result.tokenizer, ["Who are you?"], max_new_tokens=64)
"""

from .callbacks import read_log
from .config import Config, ConfigError, DataError, TunekitError, load_config
from .data import load_rows
from .generation import generate
from .models import load_for_inference, load_model, load_tokenizer
from .stages import STAGES, TrainResult, load_data, train

__version__ = "0.1.0"
__all__ = [
    "Config", "ConfigError", "DataError", "TunekitError", "load_config", "load_model", "load_tokenizer",
    "load_for_inference", "load_data", "load_rows", "train", "TrainResult", "generate", "read_log", "STAGES",
]
