"""sft: supervised fine-tuning on conversations, through trl's ``SFTTrainer``.

Keys: ``dataset`` (alpaca / sharegpt / openai sets: ``identity``, ``alpaca_en_demo``), ``cutoff_len``,
``train_on_prompt`` (also train on the prompt tokens), ``mask_history`` (train on the last answer
only), ``packing`` (join short conversations into ``cutoff_len`` sequences). The chat template
comes from the tokenizer. Rows are tokenized here, with labels equal to the ids on the assistant's
tokens and -100 elsewhere, so what ``tk.load_data`` shows is exactly what trains.
"""

from __future__ import annotations

import datasets

from ..config import Config, DataError
from ..data import IGNORE_INDEX, encode_chat, load_rows, pack_examples
from .base import PadCollator, only_known, training_kwargs

METRICS = ("loss", "eval_loss", "mean_token_accuracy", "grad_norm")


def prepare(cfg: Config, tokenizer) -> datasets.DatasetDict:
    """Tokenized conversations: ``input_ids``, ``attention_mask``, ``labels``."""
    rows = load_rows(cfg, "chat", tokenizer)
    out = {}
    for split, part in rows.items():
        examples = [
            encode_chat(tokenizer, messages, cfg.cutoff_len, cfg.train_on_prompt, cfg.mask_history)
            for messages in part["messages"]
        ]
        examples = [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"])]
        if not examples:
            raise DataError(
                f"no row of {cfg.dataset!r} keeps an answer token within cutoff_len={cfg.cutoff_len}; raise cutoff_len"
            )
        if cfg.use_packing:
            examples = pack_examples(examples, cfg.cutoff_len)
        out[split] = datasets.Dataset.from_list(examples)
    return datasets.DatasetDict(out)


def build(cfg: Config, model, tokenizer, data: datasets.DatasetDict, callbacks: list):
    from trl import SFTConfig, SFTTrainer  # imported here, after the backend (Unsloth patches trl)

    kwargs = training_kwargs(cfg, "eval" in data)
    args = SFTConfig(
        **only_known(SFTConfig, kwargs), max_length=None, packing=False,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    return SFTTrainer(
        model=model, args=args, train_dataset=data["train"], eval_dataset=data.get("eval"),
        data_collator=PadCollator(tokenizer.pad_token_id), processing_class=tokenizer, callbacks=callbacks,
    )
