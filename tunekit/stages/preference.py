"""What the stages with a reference model share (dpo, kto, grpo): the reference, and its cached log-probs.

With LoRA the reference is the policy's own weights: a fresh adapter is handed to the trl trainer
as a ``peft_config``, so the reference is the model with the adapter disabled (no second copy);
an adapter given by ``adapter_name_or_path`` (say, the SFT stage's) is kept as trl's frozen "ref"
copy, so that adapter is the reference, as users expect. With ``full``/``freeze`` trl loads a
frozen copy of the model.
"""

from __future__ import annotations

from ..config import Config
from ..distributed import say, world_size


def split_fresh_adapter(cfg: Config, model):
    """(model, peft_config) to hand to a trl trainer that builds its own reference. An Unsloth model keeps
    its adapter (its fast LoRA layers): trl's "ref" copy of a fresh adapter is the base, as LoRA starts at zero."""
    if cfg.finetuning_type != "lora" or cfg.adapter_name_or_path or not hasattr(model, "peft_config"):
        return model, None
    if getattr(model, "tunekit_backend", None) == "unsloth":
        return model, None
    peft_config = model.peft_config["default"]
    return model.unload(), peft_config


def drop_reference_adapter(model) -> None:
    """Remove trl's frozen "ref" adapter copy, so that only the trained adapter is saved."""
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")


def precompute_reference(cfg: Config, n_rows: int) -> bool:
    """Whether the reference log-probs are computed once per row before training and cached: when the
    user says so, else when the run sees each row more than once (the reference never changes)."""
    if not cfg.do_train:  # evaluation alone: each row is seen once
        return False
    if cfg.precompute_ref_log_probs is not None:
        return cfg.precompute_ref_log_probs
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world_size()
    passes = cfg.max_steps * per_step / max(n_rows, 1) if cfg.max_steps > 0 else cfg.num_train_epochs
    if passes > 1:
        say(f"[tunekit] reference log-probs: computed once per row and cached (each row is seen {passes:.1f} times; "
            "precompute_ref_log_probs: false turns this off)")
        return True
    return False
