"""Merge a LoRA adapter into its base model and save a standalone model (``tunekit export``).

Keys, as LLaMA-Factory's merge config: ``model_name_or_path``, ``adapter_name_or_path``,
``export_dir``, ``export_size`` (shard size in GB), ``export_legacy_format`` (.bin instead of
safetensors). With ``backend: unsloth`` the merge is Unsloth's ``save_pretrained_merged`` (16-bit).
"""

from __future__ import annotations

from pathlib import Path

from .backends import activate
from .config import Config
from .errors import ConfigError
from .models import load_model
from .models.builtin import portable_config


def export(cfg: Config) -> str:
    if not cfg.export_dir:
        raise ConfigError("export_dir is not set; say where the merged model goes, e.g. export_dir: models/merged")
    out = Path(cfg.export_dir)
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite_output_dir:
        raise ConfigError(f"export_dir={cfg.export_dir!r} is not empty; set overwrite_output_dir: true or pick another")
    if not cfg.adapter_name_or_path:
        raise ConfigError("adapter_name_or_path is not set; give the LoRA adapter to merge (a training output_dir)")
    if cfg.quantization_bit and activate(cfg) != "unsloth":
        raise ConfigError(f"quantization_bit={cfg.quantization_bit}: export merges the adapter into the 16-bit base; "
                          "remove quantization_bit (or export with backend: unsloth, which dequantizes as it merges)")
    model, tokenizer = load_model(Config(**{**cfg.to_dict(), "finetuning_type": "lora", "do_train": False}))
    if getattr(model, "tunekit_backend", None) == "unsloth":  # merges a LoRA or QLoRA adapter into a 16-bit model
        model.save_pretrained_merged(str(out), tokenizer, save_method="merged_16bit",
                                     max_shard_size=f"{cfg.export_size}GB",
                                     safe_serialization=not cfg.export_legacy_format)
        return str(out)
    merged = model.merge_and_unload()
    merged.save_pretrained(out, max_shard_size=f"{cfg.export_size}GB", safe_serialization=not cfg.export_legacy_format)
    tokenizer.save_pretrained(out)
    portable_config(out)
    return str(out)
