"""sft: supervised fine-tuning on conversations, through trl's ``SFTTrainer``.

Keys: ``dataset`` (alpaca / sharegpt / openai sets: ``identity``, ``alpaca_en_demo``), ``cutoff_len``,
``train_on_prompt`` (also train on the prompt tokens), ``mask_history`` (train on the last answer
only), ``packing`` (join short conversations into ``cutoff_len`` sequences; off by default). The chat
template comes from the tokenizer. Rows are tokenized here, with labels equal to the ids on the
assistant's tokens and -100 elsewhere, so what ``tk.load_data`` shows is exactly what trains.
"""

from __future__ import annotations

from ..config import Config
from ..data import IGNORE_INDEX, encode_chat, load_rows, pack_examples, views
from ..errors import DataError
from .base import PadCollator, Parts, Stage, only_known


def packed(cfg: Config) -> bool:
    return bool(cfg.packing)  # off unless the config turns it on (see README "Speed" for why)


def prepare(cfg: Config, tokenizer):
    """Tokenized conversations: ``input_ids``, ``attention_mask``, ``labels``."""
    import datasets

    out = {}
    for split, part in load_rows(cfg, "chat", tokenizer).items():
        examples = [
            encode_chat(tokenizer, messages, cfg.cutoff_len, cfg.train_on_prompt, cfg.mask_history)
            for messages in part["messages"]
        ]
        examples = [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"])]
        if not examples:
            raise DataError(
                f"no row of {cfg.dataset!r} keeps an answer token within cutoff_len={cfg.cutoff_len}; raise cutoff_len"
            )
        if packed(cfg):
            examples = pack_examples(examples, cfg.cutoff_len)
        out[split] = datasets.Dataset.from_list(examples)
    return datasets.DatasetDict(out)


def build(p: Parts):
    from trl import SFTConfig, SFTTrainer  # imported here, after the backend (Unsloth patches trl)

    from ..safety import safe

    args = SFTConfig(**only_known(SFTConfig, p.args), max_length=None, packing=False,
                     dataset_kwargs={"skip_prepare_dataset": True})
    return safe(SFTTrainer)(
        model=p.model, args=args, train_dataset=p.data["train"], eval_dataset=p.data.get("eval"),
        data_collator=PadCollator(p.tokenizer.pad_token_id), processing_class=p.tokenizer, callbacks=p.callbacks,
    )


STAGE = Stage(
    name="sft", rows="chat", prepare=prepare, build=build, show=views.chat, packed=packed,
    fused_lm_head=lambda cfg: True,
    metrics=("loss", "eval_loss", "mean_token_accuracy", "grad_norm"),
    chart=("mean_token_accuracy", "eval_mean_token_accuracy"),
)
