"""Preference and KTO rows longer than ``cutoff_len``: cut to fit, as LLaMA-Factory cuts them, never dropped.

The prompt and the answers share ``cutoff_len`` in proportion (``lengths``: a short answer is kept whole,
a long one keeps at least its share, and every answer keeps tokens), so no answer is cut away and no loss
averages over nothing (ORPO and SimPO gave NaN on such rows). The rows stay conversations, so the trl
trainers render them with the chat template as usual:

- an answer keeps the start of its text (what fits of it, at least one token);
- a prompt keeps its end, the turn the answers reply to: the oldest turns go first (a system message
  stays while it fits), then the start of the first turn kept.
"""

from __future__ import annotations

from .. import rendering
from ..rendering import token_ids


def lengths(source: int, target: int, budget: int) -> tuple[int, int]:
    """How many prompt and answer tokens fit in ``budget``: a short answer is kept whole; a long one keeps at
    least its share of ``budget``, so that truncation never cuts the answer away entirely (LLaMA-Factory's
    ``infer_seqlen``, with one answer token at the least)."""
    if source + target <= budget:
        return source, target
    if 2 * target < budget:
        keep_target = target
    elif 2 * source < budget:
        keep_target = budget - source
    else:
        keep_target = max(1, budget * target // (source + target))
    keep_target = min(keep_target, target)
    return min(source, budget - keep_target), keep_target


def _prompt_length(tokenizer, prompt: list[dict]) -> int:
    return len(rendering.prompt_ids(tokenizer, prompt))


def _answer_length(tokenizer, prompt: list[dict], answer: dict) -> int:
    return len(rendering.answer_ids(tokenizer, prompt, answer)[1])


def _cut_answer(tokenizer, answer: dict, length: int, keep: int) -> dict:
    """``answer`` with the start of its text that fits in ``keep`` tokens (its end-of-turn tokens included)."""
    content = token_ids(tokenizer, answer["content"])
    overhead = length - len(content)  # the template's tokens around the answer's text
    kept = content[: max(1, keep - overhead)]
    return {**answer, "content": tokenizer.decode(kept)}


def _cut_prompt(tokenizer, prompt: list[dict], keep: int) -> list[dict]:
    """``prompt`` in at most ``keep`` tokens: the oldest turns dropped first, then the start of the first
    turn left; it still ends with the turn the answers reply to."""
    system = [m for m in prompt[:1] if m["role"] == "system"]
    turns = prompt[len(system):]
    while len(turns) > 1 and _prompt_length(tokenizer, system + turns) > keep:
        turns = turns[1:]
        while len(turns) > 1 and turns[0]["role"] != "user":  # a conversation starts with the user
            turns = turns[1:]
    if system and _prompt_length(tokenizer, system + turns) > keep:
        system = []
    over = _prompt_length(tokenizer, system + turns) - keep
    if over > 0:
        content = token_ids(tokenizer, turns[0]["content"])
        turns = [{**turns[0], "content": tokenizer.decode(content[min(over, len(content) - 1):])}, *turns[1:]]
    return system + turns


def cut_to_fit(tokenizer, rows: list[dict], cutoff_len: int) -> tuple[list[dict], int]:
    """Preference rows (``prompt``, ``chosen``, ``rejected``) or KTO rows (``prompt``, ``completion``) cut to fit
    ``cutoff_len`` tokens; returns the rows and how many were cut."""
    sides = ("chosen", "rejected") if rows and "chosen" in rows[0] else ("completion",)
    out, cut = [], 0
    budget = cutoff_len - 1  # one token spare: text cut at a token may tokenize one token longer
    for row in rows:
        prompt_length = _prompt_length(tokenizer, row["prompt"])
        answer_lengths = [_answer_length(tokenizer, row["prompt"], row[side][0]) for side in sides]
        if prompt_length + max(answer_lengths) <= cutoff_len:
            out.append(row)
            continue
        keep_prompt, keep_answer = lengths(prompt_length, max(answer_lengths), budget)
        new = {**row, "prompt": _cut_prompt(tokenizer, row["prompt"], keep_prompt)}
        for side, length in zip(sides, answer_lengths):
            new[side] = [_cut_answer(tokenizer, row[side][0], length, keep_answer)]
        out.append(new)
        cut += 1
    return out, cut
