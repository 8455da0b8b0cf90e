"""Built-in reward functions for ``stage: grpo`` (``reward_funcs: accuracy,format,length``).

Each is called as trl calls reward functions: ``completions`` (one per sample: a string, or the chat
messages of the answer), the data set's other columns as keywords (``answer``: the reference answer),
and trl's own (``completion_ids``, ``trainer_state``, ...); it returns one float per completion.

The answer format is GSM8K's: the worked answer ends with a line ``#### <number>``.
"""

from __future__ import annotations

import re

MARKER = "####"
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"


def text_of(completion) -> str:
    """The answer's text, whether trl passes a string or chat messages."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role", "assistant") == "assistant")


def extract_answer(text: str) -> float | None:
    """The number after the last ``####`` marker; without a marker, the last number in the text."""
    after = text.rsplit(MARKER, 1)[1] if MARKER in text else None
    found = re.findall(_NUMBER, after if after is not None else text)
    if not found:
        return None
    number = found[0] if after is not None else found[-1]
    try:
        return float(number.replace(",", ""))
    except ValueError:
        return None


def accuracy(completions, answer, **kwargs) -> list[float]:
    """1.0 when the completion's final number equals the reference ``answer``'s (the number after
    ``####`` in each), else 0.0. A reference without a number scores every completion 0.0."""
    rewards = []
    for completion, reference in zip(completions, answer):
        got, want = extract_answer(text_of(completion)), extract_answer(str(reference))
        rewards.append(1.0 if got is not None and want is not None and abs(got - want) < 1e-6 else 0.0)
    return rewards


def format(completions, **kwargs) -> list[float]:  # shadows the builtin here: it is the name reward_funcs uses
    """1.0 when the completion ends with a line ``#### <number>`` (after any working), else 0.0."""
    pattern = re.compile(rf"(?:^|\n)\s*{MARKER}\s*{_NUMBER}\s*$")
    return [1.0 if pattern.search(text_of(c).strip()) else 0.0 for c in completions]


def length_penalty(max_new_tokens: int):
    """``length``: 0 for a completion of at most half ``max_new_tokens`` tokens, falling linearly to -1
    at ``max_new_tokens`` (a soft overlong penalty: long rambling answers lose, short ones are free)."""
    free = max_new_tokens // 2

    def length(completions, completion_ids=None, **kwargs) -> list[float]:
        sizes = [len(ids) for ids in completion_ids] if completion_ids is not None else [
            len(text_of(c).split()) for c in completions]
        return [-min(max(size - free, 0) / max(max_new_tokens - free, 1), 1.0) for size in sizes]

    return length


BUILT_IN = ("accuracy", "format", "length")


def built_in(name: str, max_new_tokens: int):
    """The built-in reward called ``name``."""
    return {"accuracy": accuracy, "format": format, "length": length_penalty(max_new_tokens)}[name]
