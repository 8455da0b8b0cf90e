"""What a stage is (``Stage``), what its ``build`` gets (``Parts``), and the helpers every stage shares.

Each stage module ends with one ``STAGE = Stage(...)``: everything the run recipe (``run.py``), the
panels, the launch and backend checks and the config rules need to know about the stage is said
there, once. Nothing outside a stage's own module compares ``cfg.stage`` with a stage name.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from ..config import Config
from ..data import IGNORE_INDEX
from ..errors import ConfigError


def _no_rules(cfg: Config) -> None:
    """A stage without rules of its own."""


def _never(cfg: Config) -> bool:
    return False


@dataclass(frozen=True)
class Stage:
    """One stage, described once."""

    name: str  # the value of the ``stage`` key
    rows: str  # the kind of rows it reads: "text", "chat", "prompt", "pairwise" or "unpaired" (tunekit.data)
    prepare: Callable[[Config, Any], Any]  # (cfg, tokenizer) -> its rows, a DatasetDict (what tk.load_data gives)
    build: Callable[[Parts], Any]  # -> a ready trainer, with ``train``, ``state``, ``save_model``
    show: Callable[[Config, Any, dict], list]  # (cfg, tokenizer, row) -> [(title, {input_ids, labels})]: the DataPanel
    metrics: tuple[str, ...]  # logged keys worth a plot (plot_loss); ``*`` patterns allowed
    chart: tuple[str, ...]  # the keys of the TrainPanel's second chart
    check: Callable[[Config], None] = _no_rules  # the stage's own config rules: ConfigError naming the key
    head: str = "causal_lm"  # or "score": a scalar sequence-classification head (reward models)
    multi_process: bool = True  # can it train data-parallel under torchrun / accelerate launch?
    reference: bool = False  # does it compare with a reference model (LoRA: the adapter disabled)?
    sequences_per_row: int = 1  # sequences one row trains on (chosen + rejected: 2)
    scored_per_row: int = 0  # sequences one row also sends through the model without gradients (kto: the KL term's)
    trainer_loop: bool = True  # trained by a transformers Trainer (False: its own loop, e.g. ppo)
    packed: Callable[[Config], bool] = _never  # are its rows packed into cutoff_len sequences?
    fused_lm_head: Callable[[Config], bool] = _never  # does its trl trainer use trl's fused LM head?
    plain_loading: str | None = None  # why backend: unsloth still loads its model with plain transformers
    rewards: Callable[..., Any] | None = None  # (cfg, reward_fn) -> its reward function(s), checked before loading
    samples: bool = False  # does it sample answers while it trains (ppo, grpo, rloo, distill)?
    teacher: bool = False  # does a second model (teacher_model) score every token (distill)?
    config_keys: tuple[str, ...] = ()  # keys of its own that the ConfigPanel shows (pref_beta, ...)
    defaults: dict = field(default_factory=dict)  # keys whose default is another for this stage (distill's pref_beta)
    predict: str | None = None  # what do_predict writes per held-out row: "generate" (answers) or "score" (rewards)
    perplexity: bool = False  # does its evaluation report perplexity (the exp of the held-out loss)?


@dataclass
class Parts:
    """What a stage's ``build`` puts together into a trainer (the run recipe gathers them)."""

    cfg: Config
    args: dict  # TrainingArguments keywords: the config's, with the plan's hardware decisions
    model: Any
    tokenizer: Any
    data: Any  # the stage's rows: a DatasetDict with "train" (and "eval")
    callbacks: list = field(default_factory=list)
    rewards: Any = None  # the stage's reward function(s), where it has them
    mixins: tuple = ()  # trainer mixins the config asks for (LoRA+, Muon: tunekit/extras.py), after SafeTraining


def check_room_to_answer(cfg: Config) -> None:
    """A rule of the stages that sample answers (ppo, grpo): the prompt and the answer share ``cutoff_len``."""
    if cfg.max_new_tokens >= cfg.cutoff_len:
        raise ConfigError(
            f"max_new_tokens={cfg.max_new_tokens} must be below cutoff_len={cfg.cutoff_len}: "
            "the prompt and the sampled response share cutoff_len"
        )


def only_known(cls, kwargs: dict) -> dict:
    """Keep the keywords that ``cls`` (a TrainingArguments subclass) accepts."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in kwargs.items() if k in names}


class PadCollator:
    """Right-pads ``input_ids`` (pad id), ``attention_mask`` (0) and ``labels`` (-100) to the longest row;
    packed rows have ``position_ids`` instead of an attention mask (padding gets positions 0, 1, ...,
    a sequence of its own that carries no loss)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: list[dict]):
        import torch

        length = max(len(r["input_ids"]) for r in rows)
        if self.multiple:
            length = -(-length // self.multiple) * self.multiple
        batch = {}
        for key, pad in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("labels", IGNORE_INDEX)):
            if key in rows[0]:
                batch[key] = torch.tensor([list(r[key]) + [pad] * (length - len(r[key])) for r in rows])
        if "position_ids" in rows[0]:
            batch["position_ids"] = torch.tensor([list(r["position_ids"]) + list(range(length - len(r["input_ids"])))
                                                  for r in rows])
        return batch


def import_function(target: str, key: str):
    """The function a ``module:function`` path names (the working folder is on the path), or a one-line
    ``ConfigError`` naming ``key`` (ppo's ``reward_model``, grpo's ``reward_funcs``)."""
    module_name, _, name = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{key}={target!r} cannot be imported ({err}); give module:function of a module on the "
                          "path (the working folder counts)") from None
    if not callable(function):
        raise ConfigError(f"{key}={target!r} is not a function; give module:function")
    return function
