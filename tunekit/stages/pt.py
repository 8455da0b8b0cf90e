"""pt: pre-training (continued) of a causal language model on plain text.

Keys: ``dataset`` (any set: its text is used; ``c4_demo`` is the bundled corpus), ``cutoff_len``
(the block length), ``packing`` (on by default: texts, each ending with EOS, are concatenated and
cut into ``cutoff_len`` blocks; off: one truncated sequence per text). Every token carries loss.
Trained with the transformers ``Trainer``.
"""

from __future__ import annotations

import datasets

from ..config import Config, DataError
from ..data import encode_texts, load_rows
from .base import PadCollator, only_known, training_kwargs

METRICS = ("loss", "eval_loss", "grad_norm")


def prepare(cfg: Config, tokenizer) -> datasets.DatasetDict:
    """Token blocks with ``input_ids``, ``attention_mask`` and ``labels`` (= ``input_ids``)."""
    rows = load_rows(cfg, "text")
    out = {}
    for split, part in rows.items():
        encoded = encode_texts(tokenizer, part["text"], cfg.cutoff_len, cfg.use_packing)
        if not encoded["input_ids"]:
            raise DataError(f"dataset {cfg.dataset!r} gives no text to train on")
        out[split] = datasets.Dataset.from_dict(encoded)
    return datasets.DatasetDict(out)


def build(cfg: Config, model, tokenizer, data: datasets.DatasetDict, callbacks: list):
    from transformers import Trainer, TrainingArguments  # imported here, after the backend

    args = TrainingArguments(**only_known(TrainingArguments, training_kwargs(cfg, "eval" in data)))
    return Trainer(
        model=model, args=args, train_dataset=data["train"], eval_dataset=data.get("eval"),
        data_collator=PadCollator(tokenizer.pad_token_id), processing_class=tokenizer, callbacks=callbacks,
    )
