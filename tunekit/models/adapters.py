"""What trains: ``finetuning_type`` lora (peft adapters on ``lora_target``, or the adapters of
``adapter_name_or_path`` to continue from), freeze (the last ``freeze_trainable_layers`` layers) or full."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import Config, comma_list
from ..errors import ConfigError, error_reason, warn
from .builtin import ALIASES
from .resolve import resolve_model


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

    adapters = adapter_folders(cfg)
    if adapters:
        for adapter in adapters[:-1]:  # earlier adapters are merged in, the last one trains on
            model = _load_adapter(model, adapter, cfg, trainable=False).merge_and_unload()
        return _load_adapter(model, adapters[-1], cfg, trainable=cfg.do_train)
    is_classifier = hasattr(model, "score")
    init = True
    if cfg.pissa_init:  # the adapter starts from the principal singular vectors; the base keeps the rest
        init = "pissa" if cfg.pissa_iter == -1 else f"pissa_niter_{cfg.pissa_iter}"
    lora = LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=lora_targets(model, cfg), task_type=TaskType.SEQ_CLS if is_classifier else TaskType.CAUSAL_LM,
        modules_to_save=comma_list(cfg.additional_target) or None, use_dora=cfg.use_dora, use_rslora=cfg.use_rslora,
        init_lora_weights=init,
        layers_to_transform=list(trainable_layers(model, cfg)) if cfg.use_llama_pro else None,
    )
    return get_peft_model(model, lora)


def trainable_layers(model, cfg: Config) -> range:
    """The decoder layers that train in ``freeze`` mode (and, with ``use_llama_pro``, in ``lora`` mode): the last
    ``freeze_trainable_layers`` (the first, when negative); with ``use_llama_pro`` the expanded blocks, every
    (layers / freeze_trainable_layers)-th one, as LLaMA-Factory's expand script adds them."""
    n_layers = model.config.num_hidden_layers
    k = cfg.freeze_trainable_layers
    if k == 0 or abs(k) > n_layers:
        raise ConfigError(
            f"freeze_trainable_layers={k} must be between 1 and {n_layers} (or -1 to -{n_layers}: the first layers)"
        )
    if cfg.use_llama_pro:
        if k < 0 or n_layers % k:
            raise ConfigError(f"use_llama_pro: freeze_trainable_layers={k} must divide the model's {n_layers} layers "
                              "(it is the number of expanded blocks)")
        stride = n_layers // k
        return range(stride - 1, n_layers, stride)
    return range(n_layers - k, n_layers) if k > 0 else range(-k)


def adapter_folders(cfg: Config) -> list[str]:
    """The folders of ``adapter_name_or_path``, each checked to hold a saved adapter."""
    adapters = comma_list(cfg.adapter_name_or_path)
    for adapter in adapters:
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(
                f"adapter_name_or_path={adapter!r} is not a saved adapter (no adapter_config.json); "
                "give the output_dir of a LoRA run"
            )
    return adapters


def lora_targets(model, cfg: Config) -> list[str]:
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
    warn_if_half_trained(adapter)
    if base and not _same_model(base, cfg.model_name_or_path):
        warn(f"adapter_name_or_path={adapter!r} was trained on {base!r}, not on {cfg.model_name_or_path!r}; "
             "its shapes fit, but check that this is the base you meant")
    return loaded


def warn_if_half_trained(adapter: str) -> None:
    """Say so when an adapter comes from a run that was stopped before its last step."""
    state_file = Path(adapter) / "trainer_state.json"
    try:
        state = json.loads(state_file.read_text())
        step, total = int(state["global_step"]), int(state["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if 0 < step < total:
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
    layer_ids = trainable_layers(model, cfg)
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
