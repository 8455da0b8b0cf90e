"""Which libraries train: ``backend: auto | hf | unsloth``.

``auto`` is the plain transformers + peft + trl path in this version. Unsloth is an optional extra
for CUDA machines (``pip install "tunekit[unsloth]"``); it is never imported here unless asked for.
"""

from __future__ import annotations

import importlib.util

import torch

from .config import Config, ConfigError


def choose_backend(cfg: Config) -> str:
    """The backend a run uses; a ``ConfigError`` when the one asked for cannot run here."""
    cuda = torch.cuda.is_available()
    if cfg.quantization_bit is not None and not cuda:
        raise ConfigError(
            f"quantization_bit={cfg.quantization_bit} (QLoRA) needs a CUDA GPU; remove it to train in fp32 on this CPU"
        )
    if cfg.backend != "unsloth":
        return "hf"
    if not cuda:
        raise ConfigError("backend=unsloth needs a CUDA GPU and none is visible; use backend: auto or hf")
    if importlib.util.find_spec("unsloth") is None:
        raise ConfigError('backend=unsloth needs the unsloth package: pip install "tunekit[unsloth]"')
    raise ConfigError("backend=unsloth is not wired into this version of tunekit yet; use backend: auto or hf")
