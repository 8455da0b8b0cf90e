"""Data: registry -> canonical rows -> token ids with label masks (and packing).

``load_rows(cfg, kind)`` gives the canonical rows of ``cfg.dataset`` (what a DataPanel shows);
``encode_chat`` and ``encode_texts`` turn them into ``input_ids`` / ``attention_mask`` / ``labels``
with -100 on every token that carries no loss.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .. import rendering
from ..config import Config
from ..distributed import say
from ..errors import DataError
from .cutoff import cut_to_fit, lengths, token_ids
from .detect import TAKES, detect
from .formats import KINDS, convert, entry_kind, takes
from .registry import data_files, read_registry, read_rows
from .sources import find_set

if TYPE_CHECKING:
    import datasets

IGNORE_INDEX = -100


def load_rows(cfg: Config, kind: str, tokenizer=None) -> datasets.DatasetDict:
    """Canonical rows of every set in ``cfg.dataset`` (``max_samples`` each): "train", and "eval"
    from ``eval_dataset`` or else split off by ``val_size`` (the same rows whether or not the run trains); a run
    that does not train (``do_train: false``) gets "eval" alone. With a ``tokenizer``, preference and KTO rows are
    cut to fit ``cutoff_len`` (conversations are cut as they are tokenized, ``encode_chat``)."""
    import datasets  # here, not at the top: importing tunekit (and checking a config) stays quick

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if cfg.eval_dataset:
        rows, read = _rows(cfg, cfg.eval_datasets, kind, "eval_dataset")
        evaluation = _dataset(_fit(cfg, rows, kind, tokenizer), read)
        if not cfg.do_train:  # evaluation or prediction alone: the training rows are not read
            return datasets.DatasetDict({"eval": evaluation})
    rows, read = _rows(cfg, cfg.datasets, kind)
    train = _dataset(_fit(cfg, rows, kind, tokenizer), read)
    if cfg.eval_dataset:
        return datasets.DatasetDict({"train": train, "eval": evaluation})
    parts = _split(cfg, train)
    return parts if cfg.do_train else datasets.DatasetDict({"eval": parts["eval"]})


def _dataset(rows: list[dict], read: list[str]):
    """The rows as a ``datasets.Dataset`` whose ``info.description`` says what was read (the DataPanel shows it)."""
    import datasets

    keys = list(dict.fromkeys(k for row in rows for k in row))  # one schema: a column a row lacks is None
    columns = {key: [row.get(key) for row in rows] for key in keys}
    return datasets.Dataset.from_dict(columns, info=datasets.DatasetInfo(description="\n".join(read)))


def read_words(part) -> list[str]:
    """What ``load_rows`` read, one line per set (``dataset 'x' (a file): trl preference, ...: 16 rows``)."""
    return [line for line in (part.info.description or "").splitlines() if line]


def _fit(cfg: Config, rows: list[dict], kind: str, tokenizer) -> list[dict]:
    """Preference and KTO rows cut to ``cutoff_len`` (``cutoff.py``), saying how many; the others unchanged
    (sft truncates as it tokenizes, pt packs)."""
    if tokenizer is None or kind not in ("pairwise", "unpaired"):
        return rows
    out, cut = [], 0
    for number, row in enumerate(rows, 1):
        with row_named(cfg.dataset, number):
            fitted, was_cut = cut_to_fit(tokenizer, [row], cfg.cutoff_len)
        out += fitted
        cut += was_cut
    rows = out
    if cut:
        say(f"[tunekit] {cut} of {len(rows)} rows of {cfg.dataset!r} are longer than cutoff_len={cfg.cutoff_len} "
            "tokens: cut to fit (prompt and answers in proportion, every answer keeps tokens; none dropped)")
    return rows


def check_datasets(cfg: Config) -> None:
    """Every data set the config names can be found and its files are there: checked before anything heavy
    is imported, so such a mistake is answered at once (the rows themselves are checked as they are read)."""
    for name in (*cfg.datasets, *cfg.eval_datasets):
        entry = find_set(name, cfg.dataset_dir, cfg.dataset_split)
        if entry.file_name is not None:
            data_files(entry)


def _rows(cfg: Config, names: list[str], kind: str, key: str = "dataset") -> tuple[list[dict], list[str]]:
    """The canonical rows of the sets ``names`` (``max_samples`` each), and what was read, a line per set."""
    fill = {"name": cfg.identity_name, "author": cfg.identity_author}
    rows: list[dict] = []
    read: list[str] = []
    for name in names:
        entry = find_set(name, cfg.dataset_dir, cfg.dataset_split)
        raw = read_rows(entry) if entry.detect else None
        if raw is not None and not raw:
            raise DataError(f"{key} {name!r} ({entry.source}) has no rows; give it at least one")
        if entry.detect:
            entry, words, note = detect(entry, raw, kind)
        else:
            words, note = f"{entry.formatting}, as its dataset_info.json entry says", ""
        have = entry_kind(entry)
        if not takes(kind, have):
            raise DataError(_wrong_kind(cfg.stage, name, have, kind))
        raw = read_rows(entry) if raw is None else raw
        if not raw:
            raise DataError(f"{key} {name!r} has no rows; add rows to {entry.folder / (entry.file_name or '')}")
        total = len(raw)
        if cfg.max_samples is not None:
            raw = raw[: cfg.max_samples]
        converted = convert(entry, raw, kind, fill, key)
        rows.extend(converted)
        read.append(_said(name, entry, words, note, total, len(raw), len(converted), kind, have))
    say("\n".join(f"[tunekit] {line}" for line in read))
    return rows, read  # _dataset gives them one schema (a column a row lacks, tools say, is None)


def _said(name: str, entry, words: str, note: str, total: int, taken: int, made: int, kind: str, have: str) -> str:
    """One set's line in the log: where it came from, the format it was read as, its rows and what was left out."""
    line = f"dataset {name!r} ({entry.source}): {words}: {made:,} rows"
    if taken < total:
        line += f" (the first {taken:,} of {total:,}: max_samples={taken})"
    if note:
        line += f"; {note}"
    if kind == "unpaired" and have == "pairwise":
        line += f"; each of its {taken:,} pairs is a good row (chosen) and a bad row (rejected)"
    elif kind == "prompt" and have == "pairwise":
        line += "; the prompts of its pairs (the chosen answer is the reference)"
    elif kind == "text" and have != "text":
        line += "; its turns joined as plain text"
    return line


def split_answer(messages: list[dict]) -> tuple[list[dict], str]:
    """(the conversation up to its last user turn, the answer after it: "" when there is none). The prompt
    is what ppo and grpo sample from; grpo's rewards check the answer."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] in ("user", "tool"))
    answer = messages[last_user + 1]["content"] if last_user + 1 < len(messages) else ""
    return messages[: last_user + 1], answer


def prompt_ids(tokenizer, prompt: list[dict], tools=None) -> list[int]:
    """The token ids a policy continues from: the chat template with the generation prompt (``rendering.py``)."""
    return rendering.prompt_ids(tokenizer, prompt, tools)


def row_length(tokenizer, row: dict) -> int:
    """Tokens in a canonical row before any truncation (the longer side of a preference row)."""
    if row.get("text") is not None:
        return len(token_ids(tokenizer, row["text"])) + 1
    if row.get("messages") is not None:
        return sum(len(p) + len(a) for p, a in chat_turns(tokenizer, row["messages"], row.get("tools")))
    if "chosen" in row:
        conversations = [row["prompt"] + row["chosen"], row["prompt"] + row["rejected"]]
    else:
        conversations = [row["prompt"] + row["completion"]]
    return max(sum(len(p) + len(a) for p, a in chat_turns(tokenizer, c)) for c in conversations)


@contextmanager
def row_named(dataset: str, number: int, split: str | None = None):
    """A ``DataError`` raised while rendering a row names the row: ``dataset 'x' row 3: ...`` (``row 3 of its
    train split`` once the rows are split)."""
    try:
        yield
    except DataError as err:
        where = f" of its {split} split" if split else ""
        raise DataError(f"dataset {dataset!r} row {number}{where}: {err}") from None


def _wrong_kind(stage: str, name: str, have: str, want: str) -> str:
    words = {"chat": "an instruction (SFT) set", "pairwise": "a preference set (prompt, chosen, rejected)",
             "unpaired": "a KTO set (prompt, answer, label)", "text": "a text set", "prompt": "a prompt-only set"}
    return (f"stage={stage!r} needs {words[want]}, but dataset {name!r} is {words[have]}; the stage takes "
            f"{TAKES[want]}; choose a matching dataset or another stage")


def _split(cfg: Config, train: datasets.Dataset) -> datasets.DatasetDict:
    import datasets

    if not cfg.val_size:
        return datasets.DatasetDict({"train": train})
    # a fraction holds out at least one row (datasets rounds it up, as in LLaMA-Factory's split)
    held = int(cfg.val_size) if cfg.val_size >= 1 else math.ceil(cfg.val_size * len(train))
    if held >= len(train):
        raise DataError(f"val_size={cfg.val_size} holds out {held} of the {len(train)} rows of {cfg.dataset!r} and "
                        "leaves no rows to train on; lower val_size or add rows")
    size = int(cfg.val_size) if cfg.val_size >= 1 else cfg.val_size
    parts = train.train_test_split(test_size=size, seed=cfg.seed)
    return datasets.DatasetDict({"train": parts["train"], "eval": parts["test"]})


# ---------------------------------------------------------------------------------------------
# tokenizing
# ---------------------------------------------------------------------------------------------


def chat_turns(tokenizer, messages: list[dict], tools=None) -> list[tuple[list[int], list[int]]]:
    """A conversation as (prompt ids, answer ids) pairs, one per assistant turn (``rendering.encode``): each answer
    with its end-of-turn tokens, each prompt piece what comes before it. Concatenated, the pieces are the
    sequence the model trains on; the last answer's prompt is exactly what the model is shown at inference."""
    return [(source, target) for source, target, _ in rendering.encode(tokenizer, messages, tools).turns()]


def encode_chat(tokenizer, messages: list[dict], cutoff_len: int, train_on_prompt: bool = False,
                mask_history: bool = False, tools=None, reasoning: bool = False, with_length: bool = False) -> dict:
    """``input_ids``, ``attention_mask`` and ``labels`` of one conversation.

    Labels equal the ids on assistant tokens and are -100 elsewhere (everywhere trained with
    ``train_on_prompt``); with ``mask_history`` only the last answer is trained on. Rows longer than
    ``cutoff_len`` are cut turn by turn, prompt and answer in proportion (LLaMA-Factory's ``infer_seqlen``).
    ``reasoning=True`` adds ``reasoning``: which tokens are an answer's thought (what the DataPanel shows apart);
    ``with_length=True`` adds ``length``: the conversation's tokens before any cut.
    """
    turns = rendering.encode(tokenizer, messages, tools, mask_history=mask_history).turns()
    order = list(enumerate(turns))
    if mask_history:  # the last turn is the one that matters: it gets the budget first
        order.reverse()
    pieces, used, last = [], 0, len(turns) - 1
    for index, (source, target, thought) in order:
        if used >= cutoff_len:
            break
        keep_source, keep_target = lengths(len(source), len(target), cutoff_len - used)
        source, target, thought = source[:keep_source], target[:keep_target], thought[:keep_target]
        used += keep_source + keep_target
        source_labels = list(source) if train_on_prompt else [IGNORE_INDEX] * len(source)
        target_labels = list(target) if not mask_history or index == last else [IGNORE_INDEX] * len(target)
        pieces.append((index, source + target, source_labels + target_labels, [False] * len(source) + thought))
    pieces.sort(key=lambda piece: piece[0])
    input_ids = [t for _, ids, _, _ in pieces for t in ids]
    labels = [t for _, _, lab, _ in pieces for t in lab]
    out = {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}
    if with_length:
        out["length"] = sum(len(source) + len(target) for source, target, _ in turns)
    if reasoning:
        out["reasoning"] = [r for _, _, _, marks in pieces for r in marks]
    return out


def encode_texts(tokenizer, texts: list[str], cutoff_len: int, packing: bool) -> dict[str, list]:
    """Plain text for pre-training: each text ends with EOS; packed into ``cutoff_len`` blocks, or
    one (truncated) sequence per text. Every token carries loss."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    encoded = [ids + eos for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    if packing:
        stream = [t for ids in encoded for t in ids]
        blocks = [stream[i: i + cutoff_len] for i in range(0, len(stream), cutoff_len)]
    else:
        blocks = [ids[:cutoff_len] for ids in encoded]
    return {"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks], "labels": [list(b) for b in blocks]}


def pack_examples(examples: list[dict], cutoff_len: int) -> list[dict]:
    """Greedily join whole tokenized examples into sequences of at most ``cutoff_len`` tokens, without
    cross-contamination (LLaMA-Factory's ``neat_packing``): ``position_ids`` restart at every example,
    and a packed row carries no ``attention_mask``, so transformers builds a block-diagonal causal mask
    from the positions and no token attends to another example."""
    packed: list[dict] = []
    current = {"input_ids": [], "labels": [], "position_ids": []}
    for example in sorted(examples, key=lambda e: -len(e["input_ids"])):
        if current["input_ids"] and len(current["input_ids"]) + len(example["input_ids"]) > cutoff_len:
            packed.append(current)
            current = {"input_ids": [], "labels": [], "position_ids": []}
        current["input_ids"] = current["input_ids"] + list(example["input_ids"])
        # an example's first token is never predicted on its own, so neither is it from the example before it
        current["labels"] = current["labels"] + [IGNORE_INDEX] + list(example["labels"])[1:]
        current["position_ids"] = current["position_ids"] + list(range(len(example["input_ids"])))
    if current["input_ids"]:
        packed.append(current)
    return packed


__all__ = ["load_rows", "row_length", "read_registry", "encode_chat", "encode_texts", "pack_examples", "chat_turns", "IGNORE_INDEX"]
