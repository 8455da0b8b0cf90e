"""What a row trains on, sequence by sequence: ``(title, {"input_ids", "labels"})`` pairs, the labels -100
where a token carries no loss. The DataPanel shows these; each stage names its view in its ``Stage``."""

from __future__ import annotations

from ..config import Config
from . import IGNORE_INDEX, encode_chat, prompt_ids, split_answer


def pairwise(cfg: Config, tokenizer, row: dict) -> list[tuple[str, dict]]:
    """The chosen and the rejected conversation, side by side."""
    return [(side, encode_chat(tokenizer, row["prompt"] + row[side], cfg.cutoff_len, reasoning=True))
            for side in ("chosen", "rejected")]


def unpaired(cfg: Config, tokenizer, row: dict) -> list[tuple[str, dict]]:
    """A prompt and its one answer (labelled good or bad)."""
    return [("completion", encode_chat(tokenizer, row["prompt"] + row["completion"], cfg.cutoff_len, reasoning=True))]


def prompt_only(title: str, ids: list[int]) -> list[tuple[str, dict]]:
    """The prompt a policy continues from: no token of the data carries loss (the policy writes the answer)."""
    return [(title, {"input_ids": ids, "labels": [IGNORE_INDEX] * len(ids)})]


def prompt(tokenizer, row: dict) -> list[int]:
    """The prompt ids of an SFT-shaped row: the conversation up to its last user turn, with the generation prompt."""
    return prompt_ids(tokenizer, split_answer(row["messages"])[0])
