"""Load a tokenizer and a model for a config: the one place models are loaded.

``load_model`` resolves the name (``resolve.py``), loads through Unsloth where it is the backend and can
(``unsloth.py``), else through transformers (QLoRA through bitsandbytes), and makes trainable what
``finetuning_type`` says (``adapters.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch

from ..backends import INSTALL, activate, plain_reason
from ..config import Config, parse_config
from ..errors import ConfigError
from ..templates import ensure_chat_template
from .adapters import attach_adapters
from .resolve import from_pretrained, resolve_model
from .unsloth import load_unsloth


def quiet_loading() -> None:
    """No weight-loading or data-mapping progress bars (the CLI and the panels show progress themselves).
    transformers reads the hub's switch when it is imported, so this imports none of it (see backends.py)."""
    import sys

    import datasets
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    datasets.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def _as_config(cfg: Config | str | dict) -> Config:
    """A ``Config`` from a config, a dict, or a bare model name (loaded as it is, no adapter)."""
    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, str):
        return parse_config({"model_name_or_path": cfg, "do_train": False, "finetuning_type": "full"})
    return parse_config(cfg)


def load_tokenizer(cfg: Config | str | dict, *, backend: str | None = None):
    """The tokenizer of ``model_name_or_path``, with a pad token and a chat template. ``backend``: the one a
    run's plan activated (else it is chosen and activated here)."""
    cfg = _as_config(cfg)
    if backend is None:
        activate(cfg)  # before transformers is imported: Unsloth, when it is the backend, patches it
    from transformers import AutoTokenizer

    path = resolve_model(cfg.model_name_or_path)
    tokenizer = from_pretrained(AutoTokenizer, path, trust_remote_code=cfg.trust_remote_code, cache_dir=cfg.cache_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    ensure_chat_template(tokenizer, cfg.template, cfg.enable_thinking, cfg.preserve_thinking)
    return tokenizer


def load_model(cfg: Config | str | dict, *, stage=None, head: str | None = None, tokenizer=None,
               backend: str | None = None):
    """Load model and tokenizer for ``cfg`` and attach adapters per ``finetuning_type``.

    Returns ``(model, tokenizer)``. ``stage`` (a ``tunekit.stages.Stage``; the run passes its own) gives the
    head and whether Unsloth may load it; ``head`` says it directly: ``"causal_lm"`` (default) or ``"score"``
    (a scalar sequence-classification head, for reward models). With ``backend: unsloth`` a LoRA or QLoRA
    language model loads through Unsloth's ``FastLanguageModel``; everything else through transformers.
    ``backend``: the one a run's plan activated (else it is chosen and activated here).
    """
    cfg = _as_config(cfg)
    head = head or (stage.head if stage is not None else "causal_lm")
    backend = backend or activate(cfg, stage)
    tokenizer = tokenizer or load_tokenizer(cfg, backend=backend)
    if backend == "unsloth" and plain_reason(cfg, stage, head) is None:
        return load_unsloth(cfg, tokenizer), tokenizer
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = resolve_model(cfg.model_name_or_path)
    loader = AutoModelForCausalLM if head == "causal_lm" else AutoModelForSequenceClassification
    kwargs = {"trust_remote_code": cfg.trust_remote_code, "cache_dir": cfg.cache_dir, "dtype": _dtype(cfg)}
    if head == "score":
        kwargs["num_labels"] = 1
    if attention := attention_implementation(cfg):
        kwargs["attn_implementation"] = attention
    if cfg.quantization_bit:
        device = int(os.environ.get("LOCAL_RANK", "0"))  # bitsandbytes quantizes as it loads onto this GPU
        kwargs.update(quantization_config=_bitsandbytes_config(cfg), device_map={"": device})
    model = from_pretrained(loader, path, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.do_train:  # training never uses the KV cache; without one, packed rows get their block-diagonal mask
        model.config.use_cache = False
    if cfg.quantization_bit and cfg.do_train:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(cfg.gradient_checkpointing))
    model = attach_adapters(model, cfg)
    return model, tokenizer


ATTENTION = {"disabled": "eager", "sdpa": "sdpa", "fa2": "flash_attention_2", "fa3": "flash_attention_3"}


def attention_implementation(cfg: Config) -> str | None:
    """transformers' ``attn_implementation`` for LLaMA-Factory's ``flash_attn``: ``auto`` (None) leaves transformers'
    choice (SDPA where torch has it), ``disabled`` is eager attention, ``sdpa`` torch's kernel; ``fa2`` and ``fa3``
    need the flash-attn package on a CUDA GPU, and where it is missing the run says so and keeps transformers'
    choice, as LLaMA-Factory does."""
    if cfg.flash_attn == "auto":
        return None
    if cfg.flash_attn in ("fa2", "fa3"):
        from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

        if not (is_flash_attn_2_available() if cfg.flash_attn == "fa2" else is_flash_attn_3_available()):
            from ..distributed import say

            say(f"[tunekit] flash_attn: {cfg.flash_attn} needs the flash-attn package and a CUDA GPU; attention "
                f"stays transformers' default (SDPA)")
            return None
    return ATTENTION[cfg.flash_attn]


def _bitsandbytes_config(cfg: Config):
    """QLoRA on the plain path: the base model quantized by bitsandbytes (4-bit NF4 with double
    quantization, as LLaMA-Factory; or 8-bit), computing in the training dtype."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"quantization_bit={cfg.quantization_bit} with backend: hf needs the bitsandbytes package: "
                          f'pip install bitsandbytes (or {INSTALL} for the Unsloth backend)')
    from transformers import BitsAndBytesConfig

    if cfg.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=_dtype(cfg))


def _dtype(cfg: Config) -> torch.dtype:
    if cfg.pure_bf16 and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16  # every weight in bf16: no fp32 master copy, no autocast
    if torch.cuda.is_available() and cfg.finetuning_type == "lora":
        if cfg.bf16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if cfg.fp16:
            return torch.float16
    return torch.float32


def load_for_inference(model: str, adapter: str | None = None):
    """Model (with an optional LoRA adapter) and tokenizer, ready to generate. ``model`` may be a run's output
    that holds a LoRA adapter: it is loaded on the base its ``adapter_config.json`` names."""
    saved = Path(model) / "adapter_config.json"
    if adapter is None and saved.is_file():
        adapter, model = model, json.loads(saved.read_text()).get("base_model_name_or_path") or model
    cfg = parse_config(
        {"model_name_or_path": model, "do_train": False, "finetuning_type": "lora" if adapter else "full",
         "adapter_name_or_path": adapter}
    )
    loaded, tokenizer = load_model(cfg)
    loaded.eval()
    return loaded, tokenizer
