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


def precompute_reference(cfg: Config, n_rows: int, quiet: bool = False) -> bool:
    """Whether the reference log-probs are computed once per row before training and cached: when the
    user says so, else when the run sees each row more than once (the reference never changes). The plan
    (``estimate``) asks too, ``quiet``: a cached reference costs no forward pass per step."""
    if not cfg.do_train:  # evaluation alone: each row is seen once
        return False
    if cfg.precompute_ref_log_probs is not None:
        return cfg.precompute_ref_log_probs
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world_size()
    passes = cfg.max_steps * per_step / max(n_rows, 1) if cfg.max_steps > 0 else cfg.num_train_epochs
    if passes > 1 and not quiet:
        say(f"[tunekit] reference log-probs: computed once per row and cached (each row is seen {passes:.1f} times; "
            "precompute_ref_log_probs: false turns this off)")
    return passes > 1


# ---------------------------------------------------------------------------------------------
# rows as tokens, rendered by tunekit (rendering.py) rather than by each trl trainer
# ---------------------------------------------------------------------------------------------


def as_tokens(tokenizer, data, joined: bool = False):
    """Preference rows as ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``, KTO rows as ``prompt_ids`` /
    ``completion_ids`` / ``label``: the prompt exactly as the model is shown it at inference, each answer as the
    template writes it after that (``rendering.answer_ids``). trl's trainers take such rows as they are.
    ``joined``: each side's ids are the whole sequence, prompt included (trl's ``RewardTrainer`` rows)."""
    import datasets

    from ..rendering import answer_ids

    def row(example: dict) -> dict:
        sides = ("chosen", "rejected") if "chosen" in example else ("completion",)
        out: dict = {}
        for side in sides:
            prompt, answer = answer_ids(tokenizer, example["prompt"], example[side])
            out["prompt_ids"], out[f"{side}_ids"] = prompt, (prompt + answer if joined else answer)
        if joined:
            del out["prompt_ids"]
        if "label" in example:
            out["label"] = example["label"]
        return out

    return datasets.DatasetDict({split: datasets.Dataset.from_list([row(r) for r in part])
                                 for split, part in data.items()})


def as_texts(tokenizer, data):
    """Preference rows as text (``prompt``, ``chosen``, ``rejected``), rendered here: for trl's ORPO and CPO
    (SimPO) trainers, which tokenize text without adding special tokens."""
    import datasets

    from ..rendering import answer_texts

    def row(example: dict) -> dict:
        (prompt, chosen), (_, rejected) = (answer_texts(tokenizer, example["prompt"], example[side])
                                           for side in ("chosen", "rejected"))
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}

    return datasets.DatasetDict({split: datasets.Dataset.from_list([row(r) for r in part])
                                 for split, part in data.items()})


class Pretokenized:
    """Mixin for trl's ``DPOTrainer`` and ``KTOTrainer``: rows that ``as_tokens`` made are used as they are (trl
    would render the conversations again, with its own rule for where the prompt ends). For KTO, each answer of a
    batch is also paired with the previous row's prompt for the KL term, as trl pairs them."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if "prompt_ids" not in dataset.column_names:
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        if getattr(self, "calculate_KL", False) and "completion_ids" in dataset.column_names:
            def mismatched(batch):  # (x_1, y_n), (x_2, y_1), ...: each prompt with another row's answer
                return {**batch, "KL_completion_ids": batch["completion_ids"][-1:] + batch["completion_ids"][:-1]}

            dataset = dataset.map(mismatched, batched=True, batch_size=args.per_device_train_batch_size)
        return dataset
