"""sft: supervised fine-tuning on conversations, through trl's ``SFTTrainer``.

Keys: ``dataset`` (alpaca / sharegpt / openai sets: ``identity``, ``alpaca_en_demo``), ``cutoff_len``,
``train_on_prompt`` (also train on the prompt tokens), ``mask_history`` (train on the last answer
only), ``packing`` (join short conversations into ``cutoff_len`` sequences; off by default),
``use_dft_loss`` (dynamic fine-tuning: each answer token's loss weighted by its probability). The chat
template comes from the tokenizer. Rows are tokenized here, with labels equal to the ids on the
assistant's tokens and -100 elsewhere, so what ``tk.load_data`` shows is exactly what trains.
"""

from __future__ import annotations

from ..config import Config
from ..data import IGNORE_INDEX, encode_chat, encode_texts, load_rows, pack_examples, row_named
from ..errors import DataError, warn
from .base import PadCollator, Parts, Stage, only_known


def say_cut(cfg: Config, split: str, lengths: list[int], dropped: int) -> None:
    """One warning for the rows longer than ``cutoff_len``: they train cut, as in LLaMA-Factory (each turn's prompt
    and answer in proportion, later turns left out once the budget is spent)."""
    long = [n for n in lengths if n > cfg.cutoff_len]
    if not long:
        return
    gone = f"; {dropped} left with no answer token were dropped" if dropped else ""
    warn(f"{len(long)} of {len(lengths)} rows of dataset {cfg.dataset!r} ({split}) are longer than "
         f"cutoff_len={cfg.cutoff_len} tokens: cut to fit as LLaMA-Factory cuts them (prompt and answer in "
         f"proportion), from {sum(long) / len(long):.0f} tokens on average ({max(long)} at most){gone}")


def packed(cfg: Config) -> bool:
    return bool(cfg.packing)  # off unless the config turns it on (see docs/speed.md for why)


def encode_row(cfg: Config, tokenizer, row: dict, reasoning: bool = False) -> dict:
    """One row's ``input_ids`` / ``labels`` (and its ``length`` before any cut): a conversation with the loss on its
    answers, or a language-modelling text (trl's ``text`` format) with the loss on every token, as trl's SFT trains it."""
    if row.get("text") is not None:
        encoded = encode_texts(tokenizer, [row["text"]], cutoff_len=10**9, packing=False)
        ids = encoded["input_ids"][0]
        out = {"input_ids": ids[: cfg.cutoff_len], "attention_mask": [1] * min(len(ids), cfg.cutoff_len),
               "labels": ids[: cfg.cutoff_len], "length": len(ids)}
        return out | ({"reasoning": [False] * len(out["input_ids"])} if reasoning else {})
    return encode_chat(tokenizer, row["messages"], cfg.cutoff_len, cfg.train_on_prompt, cfg.mask_history,
                       row.get("tools"), reasoning=reasoning, with_length=True)


def prepare(cfg: Config, tokenizer):
    """Tokenized conversations: ``input_ids``, ``attention_mask``, ``labels``."""
    import datasets

    out = {}
    for split, part in load_rows(cfg, "chat", tokenizer).items():
        examples = []
        for number, row in enumerate(part, 1):
            with row_named(cfg.dataset, number, split):
                examples.append(encode_row(cfg, tokenizer, row))
        lengths = [e.pop("length") for e in examples]
        kept = [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"])]
        if not kept:
            raise DataError(
                f"no row of {cfg.dataset!r} keeps an answer token within cutoff_len={cfg.cutoff_len}; raise cutoff_len"
            )
        say_cut(cfg, split, lengths, len(examples) - len(kept))
        examples = kept
        if packed(cfg):
            examples = pack_examples(examples, cfg.cutoff_len)
        out[split] = datasets.Dataset.from_list(examples)
    return datasets.DatasetDict(out)


def show(cfg: Config, tokenizer, row: dict) -> list[tuple[str, dict]]:
    """A conversation, with the loss on the answers (``train_on_prompt`` and ``mask_history`` apply), or a text."""
    encoded = encode_row(cfg, tokenizer, row, reasoning=True)
    encoded.pop("length")
    return [("text" if row.get("text") is not None else "conversation", encoded)]


class DftLoss:
    """Mixin for trl's ``SFTTrainer``: dynamic fine-tuning (Wu et al., 2025), the loss of each answer token
    multiplied by the model's (detached) probability of it, so tokens the model finds unlikely weigh less."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        labels = inputs["labels"]
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        logits, targets = outputs.logits[:, :-1].float(), labels[:, 1:]
        mask = targets != IGNORE_INDEX
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        per_token = -logp * logp.detach().exp()
        count = num_items_in_batch if num_items_in_batch is not None else mask.sum()
        loss = (per_token * mask).sum() / torch.as_tensor(count, device=per_token.device).clamp(min=1)
        return (loss, outputs) if return_outputs else loss


def build(p: Parts):
    from trl import SFTConfig, SFTTrainer  # imported here, after the backend (Unsloth patches trl)

    from ..safety import safe

    args = SFTConfig(**only_known(SFTConfig, p.args), max_length=None, packing=False,
                     dataset_kwargs={"skip_prepare_dataset": True})
    mixins = (DftLoss, *p.mixins) if p.cfg.use_dft_loss else p.mixins
    return safe(SFTTrainer, *mixins)(
        model=p.model, args=args, train_dataset=p.data["train"], eval_dataset=p.data.get("eval"),
        data_collator=PadCollator(p.tokenizer.pad_token_id), processing_class=p.tokenizer, callbacks=p.callbacks,
    )


STAGE = Stage(
    name="sft", rows="chat", prepare=prepare, build=build, show=show, packed=packed, predict="generate",
    perplexity=True,
    fused_lm_head=lambda cfg: True,
    metrics=("loss", "eval_loss", "mean_token_accuracy", "grad_norm"),
    chart=("mean_token_accuracy", "eval_mean_token_accuracy"),
)
