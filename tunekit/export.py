"""Merge a LoRA adapter into its base model and save a standalone model (``tunekit export``).

Keys, as LLaMA-Factory's merge config: ``model_name_or_path``, ``adapter_name_or_path``,
``export_dir``, ``export_size`` (shard size in GB), ``export_legacy_format`` (.bin instead of
safetensors). With ``backend: unsloth`` the merge is Unsloth's ``save_pretrained_merged`` (16-bit).
``export_gguf: f16 | q8_0`` also writes ``export_dir/model-<type>.gguf`` and an Ollama ``Modelfile``
(``gguf.py``); with it, a full model needs no adapter (a ``finetuning_type: full`` output, a base model).
"""

from __future__ import annotations

import json
from pathlib import Path

from .backends import activate
from .config import Config
from .errors import ConfigError
from .gguf import check_exportable, write_gguf
from .models import load_model, quiet_score_head, resolve_model
from .models.adapters import adapter_folders
from .models.builtin import portable_config


def export(cfg: Config) -> str:
    if not cfg.export_dir:
        raise ConfigError("export_dir is not set; say where the merged model goes, e.g. export_dir: models/merged")
    out = Path(cfg.export_dir)
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite_output_dir:
        raise ConfigError(f"export_dir={cfg.export_dir!r} is not empty; set overwrite_output_dir: true or pick another")
    if not cfg.adapter_name_or_path and not cfg.export_gguf:
        raise ConfigError("adapter_name_or_path is not set; give the LoRA adapter to merge (a training output_dir), "
                          "or set export_gguf (f16 or q8_0) to write a full model as GGUF")
    if cfg.quantization_bit and activate(cfg) != "unsloth":
        raise ConfigError(f"quantization_bit={cfg.quantization_bit}: export merges the adapter into the 16-bit base; "
                          "remove quantization_bit (or export with backend: unsloth, which dequantizes as it merges)")
    task = _adapter_task(cfg)
    if cfg.export_gguf:
        _check_gguf(cfg, task)  # before anything is loaded or written
    finetuning = "lora" if cfg.adapter_name_or_path else "full"
    load = Config(**{**cfg.to_dict(), "finetuning_type": finetuning, "do_train": False})
    if task == "SEQ_CLS":  # a reward model's adapter: merged with its score head
        with quiet_score_head():
            model, tokenizer = load_model(load, head="score")
    else:
        model, tokenizer = load_model(load)
    if getattr(model, "tunekit_backend", None) == "unsloth":  # merges a LoRA or QLoRA adapter into a 16-bit model
        model.save_pretrained_merged(str(out), tokenizer, save_method="merged_16bit",
                                     max_shard_size=f"{cfg.export_size}GB",
                                     safe_serialization=not cfg.export_legacy_format)
        if cfg.export_gguf:
            from transformers import AutoModelForCausalLM

            write_gguf(AutoModelForCausalLM.from_pretrained(out), tokenizer, out, cfg.export_gguf)
        return str(out)
    merged = model.merge_and_unload() if cfg.adapter_name_or_path else model
    merged.save_pretrained(out, max_shard_size=f"{cfg.export_size}GB", safe_serialization=not cfg.export_legacy_format)
    tokenizer.save_pretrained(out)
    portable_config(out)
    if cfg.export_gguf:
        write_gguf(merged, tokenizer, out, cfg.export_gguf)
    return str(out)


def _check_gguf(cfg: Config, task: str | None) -> None:
    """A one-line error, before any loading, for a model the GGUF writer does not take (``task``: the adapter's)."""
    activate(cfg)  # Unsloth, where it is the backend, is imported before transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model(cfg.model_name_or_path), trust_remote_code=cfg.trust_remote_code,
                                        cache_dir=cfg.cache_dir)
    check_exportable(config, cfg.export_gguf, task)


def _adapter_task(cfg: Config) -> str | None:
    """The last adapter's peft ``task_type`` (``SEQ_CLS``: a reward model's), or None without an adapter."""
    adapters = adapter_folders(cfg) if cfg.adapter_name_or_path else []
    return json.loads((Path(adapters[-1]) / "adapter_config.json").read_text()).get("task_type") if adapters else None
