"""Checks: answers scored by a function, for ``tk.evaluate`` (``checks=``) and ``tunekit eval --checks``.

A check is called exactly as ``stage: grpo`` calls its reward functions (so one written for GRPO works
here unchanged): ``fn(prompts=[...], completions=[...], answer=[...], ...)``, where each prompt is the
held-out row's conversation up to its last user turn (chat messages), each completion the answer as
chat messages (``[{"role": "assistant", "content": ...}]``; ``tunekit.rewards.text_of`` gives its text),
and the row's other columns come as keywords (``answer``: the data set's answer to the prompt). It
returns one number per completion (``None``: not applicable, left out of the mean).

Built-in checks: ``accuracy`` and ``format`` (GSM8K style ``#### <number>``, from ``tunekit/rewards.py``; rows whose
own answer holds no number are left out of ``accuracy``, so a mixed set such as ``alpaca_en_demo`` is scored on
its computed rows),
``name`` (the answer names ``identity_name``, the model's name in the bundled ``identity`` set; rows whose
own answer does not name it are left out) and ``repetition`` (the share of an answer's word 3-grams that repeat
an earlier one of the same answer: 0 for an answer that never repeats itself; lower is better, and a win judged
by it is the less repetitive answer).
Any other check is a ``module:function`` path. With no ``checks=``, a data set brings its own:
``math_demo`` -> accuracy, format; ``identity`` -> name.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable

from . import rewards
from .config import Config, comma_list
from .errors import ConfigError

BUILT_IN = ("accuracy", "format", "name", "repetition")
LOWER_IS_BETTER = ("repetition",)  # checks where a smaller number is the better answer
DEFAULTS = {"math_demo": ("accuracy", "format"), "math_tables_demo": ("accuracy", "format"), "identity": ("name",)}  # data set -> the checks it brings
CALLED_AS = ("it is called as GRPO reward functions are, fn(prompts=[...], completions=[...], answer=[...], ...), "
             "and must return a list of numbers, one per completion")


def name_check(identity_name: str):
    """``name``: 1.0 when the answer names ``identity_name`` (as a word, any case), else 0.0; ``None`` (not
    applicable) for a row whose own answer does not name it, so a mixed set is scored on its identity rows."""
    pattern = re.compile(rf"(?<!\w){re.escape(identity_name)}(?!\w)", re.IGNORECASE)

    def name(completions, answer=None, **kwargs) -> list[float | None]:
        references = answer if answer is not None else [None] * len(completions)
        return [None if reference is not None and not pattern.search(str(reference)) else
                1.0 if pattern.search(rewards.text_of(c)) else 0.0 for c, reference in zip(completions, references)]

    return name


def repetition(completions, n: int = 3, **kwargs) -> list[float]:
    """``repetition``: per answer, the share of its word ``n``-grams (lower-cased, punctuation kept) that repeat
    an earlier ``n``-gram of the same answer; 0.0 when it has fewer than ``n`` words. "Rome is the capital.
    Rome is the capital." scores 1/3 (2 of its 6 3-grams repeat); a policy that learned to loop scores near 1."""
    out = []
    for completion in completions:
        words = rewards.text_of(completion).lower().split()
        grams = [tuple(words[i: i + n]) for i in range(len(words) - n + 1)]
        out.append((len(grams) - len(set(grams))) / len(grams) if grams else 0.0)
    return out


def accuracy(completions, answer, **kwargs) -> list[float | None]:
    """``accuracy``: GRPO's ``accuracy`` reward (the answer's final number, or the one after ``####``, equals the
    reference's) on rows whose reference holds a number; ``None`` (not applicable) for the others."""
    scores = rewards.accuracy(completions, answer)
    return [None if rewards.extract_answer(str(reference)) is None else score
            for score, reference in zip(scores, answer)]


@dataclass
class Check:
    """One check: ``name`` (what the table shows: "accuracy" or "module:function") and its function."""

    name: str
    function: Callable[..., Any]

    def __call__(self, prompts: list, answers: list[str], columns: dict[str, list] | None = None) -> list[float]:
        """One score per answer (``nan`` where the check returned ``None``), or a one-line ``ConfigError``
        naming the check when it fails or returns anything but one number per answer."""
        completions = [[{"role": "assistant", "content": answer}] for answer in answers]
        try:
            got = self.function(prompts=prompts, completions=completions, **(columns or {}))
        except Exception as err:  # a user's function: any failure is answered in one line
            raise ConfigError(f"checks: {self.name!r} failed ({type(err).__name__}: {_short(err)}); "
                              f"{CALLED_AS}") from None
        if not isinstance(got, (list, tuple)) or len(got) != len(answers) or not all(
                v is None or isinstance(v, numbers.Real) for v in got):
            raise ConfigError(f"checks: {self.name!r} returned {_describe(got)} for {len(answers)} answers; "
                              f"{CALLED_AS}")
        return [math.nan if v is None else float(v) for v in got]


def resolve(checks, cfg: Config) -> list[Check]:
    """``checks`` (a comma list, or a list of names, ``module:function`` paths and functions) as ``Check``s.
    An unknown name or a path that cannot be imported is a ``ConfigError`` naming ``checks``."""
    from .stages.base import import_function

    items = comma_list(checks) if isinstance(checks, str) else list(checks or [])
    found: list[Check] = []
    for item in items:
        if callable(item):
            found.append(Check(getattr(item, "__name__", "check"), item))
        elif ":" in str(item):
            found.append(Check(str(item), import_function(str(item), "checks")))
        elif item in BUILT_IN:
            found.append(Check(item, built_in(item, cfg)))
        else:
            import difflib

            close = difflib.get_close_matches(str(item), BUILT_IN, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"checks: {item!r} is not a built-in check ({', '.join(BUILT_IN)}); {hint}"
                              "or give a module:function path")
    return found


def built_in(name: str, cfg: Config):
    """The built-in check called ``name``."""
    if name == "name":
        return name_check(cfg.identity_name)
    return {"accuracy": accuracy, "format": rewards.format, "repetition": repetition}[name]


def defaults(cfg: Config, reward_funcs: bool = False) -> list[str]:
    """The checks a config brings without ``checks=``: the built-in checks among its ``reward_funcs`` (when
    the stage reads them, ``reward_funcs=True``), then those of its data sets (``DEFAULTS``)."""
    names = [n for n in comma_list(cfg.reward_funcs) if n in BUILT_IN] if reward_funcs else []
    for dataset in (*cfg.datasets, *cfg.eval_datasets):
        names.extend(DEFAULTS.get(dataset, ()))
    return list(dict.fromkeys(names))


def _describe(value) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} ({text})"
    return f"{type(value).__name__} {text}"


def _short(err: Exception) -> str:
    line = " ".join(str(err).split()) or type(err).__name__
    return line if len(line) <= 120 else line[:117] + "..."


__all__ = ["BUILT_IN", "Check", "DEFAULTS", "LOWER_IS_BETTER", "accuracy", "built_in", "defaults", "name_check", "repetition",
           "resolve"]
