"""A model name to something transformers can load: a built-in alias (built on first use), a local folder
(checked, so that a broken one is answered in one line before transformers reads it) or a hub id."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import ConfigError, error_reason
from ..hub import hub_reachable
from .builtin import ALIASES, SMOLLM2, TINY, smollm2_folder, tiny_folder

_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def resolve_model(name: str) -> str:
    """An alias becomes its cached folder (built on first use); a folder or hub id is checked."""
    key = name.strip().lower()
    if key == SMOLLM2:
        return str(smollm2_folder())
    if key == TINY:
        return str(tiny_folder())
    path = Path(name).expanduser()
    if path.exists():
        _check_model_folder(path, name)
        return str(path)
    if _looks_like_hub_id(name):
        return name
    raise ConfigError(
        f"model_name_or_path={name!r} is not a folder, a hub id (org/name) or a built-in alias "
        f"({', '.join(ALIASES)})"
    )


def _looks_like_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name)) and not name.startswith((".", "~"))


def _check_model_folder(path: Path, name: str) -> None:
    if not path.is_dir():
        raise ConfigError(f"model_name_or_path={name!r} is a file; give the folder that holds config.json")
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        raise ConfigError(
            f"model_name_or_path={name!r} is a LoRA adapter, not a model; set adapter_name_or_path: {name} "
            f"and model_name_or_path: {base}"
        )
    if not (path / "config.json").is_file():
        raise ConfigError(f"model_name_or_path={name!r} has no config.json; give a folder saved by save_pretrained")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"model_name_or_path={name!r}: its config.json is not valid JSON; the folder cannot be "
                          "loaded, save it again with save_pretrained") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type and "auto_map" not in config:
        from transformers import CONFIG_MAPPING, __version__

        if model_type not in CONFIG_MAPPING:
            raise ConfigError(
                f"model_name_or_path={name!r} has model_type {model_type!r}, which transformers {__version__} "
                "does not know; upgrade transformers, or check the folder's config.json"
            )
    if not any(next(path.glob(pattern), None) for pattern in _WEIGHT_FILES):
        raise ConfigError(
            f"model_name_or_path={name!r} has no weights (model.safetensors or pytorch_model.bin); "
            "the download or save may be incomplete"
        )
    if not any((path / file).is_file() for file in _TOKENIZER_FILES):
        raise ConfigError(
            f"model_name_or_path={name!r} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}); "
            "save them there too with tokenizer.save_pretrained(folder)"
        )


def cache_only(path: str) -> dict:
    """``{"local_files_only": True}`` for a hub id while the hub cannot be reached (the cache answers at once, where
    the hub's client would retry for minutes), else nothing: keyword arguments for any ``from_pretrained``."""
    return {"local_files_only": True} if not Path(path).exists() and not hub_reachable() else {}


def from_pretrained(loader, path: str, **kwargs):
    """``loader.from_pretrained`` with a one-line error when a hub id cannot be had."""
    is_hub = not Path(path).exists()
    kwargs.update(cache_only(path))
    try:
        return loader.from_pretrained(path, **kwargs)
    except Exception as err:  # a local folder's bad config.json or weights: one line, whatever the library raised
        if not is_hub:
            raise ConfigError(f"model_name_or_path={path!r} cannot be loaded ({error_reason(err, path)}); "
                              "check that the folder was written by save_pretrained and is complete") from None
        if not isinstance(err, OSError):
            raise
        reason = "the Hugging Face hub is unreachable" if kwargs.get("local_files_only") else "it was not found on the hub"
        raise ConfigError(
            f"model_name_or_path={path!r} is not a local folder, and as a hub id it cannot be loaded: {reason} and "
            f"it is not in the local cache; offline, use a built-in alias ({', '.join(ALIASES)}) or a local folder"
        ) from None
