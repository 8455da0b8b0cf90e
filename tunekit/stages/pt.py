"""pt: pre-training (continued) of a causal language model on plain text.

Keys: ``dataset`` (any set: its text is used; ``c4_demo`` is the bundled corpus), ``cutoff_len``
(the block length), ``packing`` (on by default: texts, each ending with EOS, are concatenated and
cut into ``cutoff_len`` blocks; off: one truncated sequence per text). Every token carries loss.
Trained with the transformers ``Trainer``.
"""

from __future__ import annotations

from ..config import Config
from ..data import encode_texts, load_rows
from ..errors import DataError
from .base import PadCollator, Parts, Stage, only_known


def packed(cfg: Config) -> bool:
    return cfg.packing is not False  # on unless the config turns it off


def prepare(cfg: Config, tokenizer):
    """Token blocks with ``input_ids``, ``attention_mask`` and ``labels`` (= ``input_ids``)."""
    import datasets

    out = {}
    for split, part in load_rows(cfg, "text").items():
        encoded = encode_texts(tokenizer, part["text"], cfg.cutoff_len, packed(cfg))
        if not encoded["input_ids"]:
            raise DataError(f"dataset {cfg.dataset!r} gives no text to train on")
        out[split] = datasets.Dataset.from_dict(encoded)
    return datasets.DatasetDict(out)


def show(cfg: Config, tokenizer, row: dict) -> list[tuple[str, dict]]:
    ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = ids if packed(cfg) else ids[: cfg.cutoff_len]
    return [("text", {"input_ids": ids, "labels": list(ids)})]


def build(p: Parts):
    from transformers import Trainer, TrainingArguments  # imported here, after the backend

    from ..safety import safe

    return safe(Trainer, *p.mixins)(
        model=p.model, args=TrainingArguments(**only_known(TrainingArguments, p.args)), train_dataset=p.data["train"],
        eval_dataset=p.data.get("eval"), data_collator=PadCollator(p.tokenizer.pad_token_id),
        processing_class=p.tokenizer, callbacks=p.callbacks,
    )


STAGE = Stage(
    name="pt", rows="text", prepare=prepare, build=build, show=show, packed=packed, perplexity=True,
    metrics=("loss", "eval_loss", "grad_norm"), chart=("grad_norm",),
)
