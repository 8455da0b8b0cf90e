"""The stage table and the one training entry that the CLI, the notebooks and the panels call.

Every stage module has the same shape: a docstring (purpose, keys, data), ``prepare(cfg, tokenizer)``
(the stage's rows, what ``tk.load_data`` returns), ``build(cfg, model, tokenizer, data, callbacks)``
(a ready trainer) and ``METRICS`` (the logged keys worth plotting).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import (Config, ConfigError, TrainingError, check_output_dir, checkpoint_step, degrade_for_hardware,
                      error_reason, last_checkpoint, load_config)
from ..backends import activate, describe
from ..distributed import check_launch, is_main_process, say, world_size
from ..models import load_model, load_tokenizer, trainable_summary
from ..safety import ctrl_c_stops, guard_hf_trainer, remove_partial_saves, save_outputs
from . import dpo, grpo, kto, ppo, pt, rm, sft
from .base import decide_gradient_checkpointing
from .preference import drop_reference_adapter
from .rm import score

STAGES = {"pt": pt, "sft": sft, "rm": rm, "ppo": ppo, "dpo": dpo, "kto": kto, "grpo": grpo}


@dataclass
class TrainResult:
    """What ``tk.train`` returns: where things went, the final metrics, and the trained model."""

    output_dir: str
    metrics: dict
    log_path: str
    plots: list[str] = field(default_factory=list)
    model: Any = None
    tokenizer: Any = None
    trainer: Any = None
    stopped: bool = False  # ended before max_steps (Stop, or a callback); a checkpoint of that step exists


def stage_module(cfg: Config):
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage={cfg.stage!r} is not available in this version; available: {', '.join(STAGES)}")
    return STAGES[cfg.stage]


def load_data(cfg: Config | str | dict, tokenizer):
    """The stage's training rows for ``cfg`` (a ``datasets.DatasetDict``: "train", and "eval" when
    ``val_size`` > 0). For pt and sft: ``input_ids``, ``attention_mask``, ``labels`` (-100 = no loss)."""
    cfg = cfg if isinstance(cfg, Config) else load_config(cfg)
    return stage_module(cfg).prepare(cfg, tokenizer)


def _resume_path(cfg: Config) -> str | None:
    """The checkpoint ``resume_from_checkpoint`` names (``true``: the last one), checked to exist and to
    leave steps to train: a checkpoint at or past ``max_steps`` would 'resume' into a run that trains nothing."""
    value = cfg.resume_from_checkpoint
    if value in (None, False):
        return None
    if value is True:
        found = last_checkpoint(cfg.output_dir)
        if found is None:
            raise ConfigError(
                f"resume_from_checkpoint: true, but output_dir={cfg.output_dir!r} has no checkpoint-* folder; "
                "set save_steps so that checkpoints are written, or drop resume_from_checkpoint"
            )
    elif not Path(value).exists():
        raise ConfigError(f"resume_from_checkpoint={value!r} does not exist; give a checkpoint-N folder of a run, "
                          "or true for the last one in output_dir")
    elif not (Path(value) / "trainer_state.json").is_file():
        raise ConfigError(f"resume_from_checkpoint={value!r} is not a checkpoint folder (no trainer_state.json); "
                          "give a checkpoint-N folder of a run, or true for the last one in output_dir")
    found = found if value is True else str(value)
    if cfg.max_steps > 0 and checkpoint_step(found) >= cfg.max_steps:
        raise ConfigError(
            f"resume_from_checkpoint={found!r} is at step {checkpoint_step(found)} and max_steps={cfg.max_steps}: "
            "nothing is left to train; raise max_steps, or drop resume_from_checkpoint to start again"
        )
    return found


# What a run writes into output_dir: removed before a run with overwrite_output_dir: true.
_OUTPUTS = ("checkpoint-*", "training_*.png", "*_results.json", "trainer_state.json", "adapter_*",
            "model*.safetensors", "pytorch_model*.bin", "config.json", "generation_config.json", "tokenizer*",
            "special_tokens_map.json", "chat_template.jinja", "training_args.bin", "README.md",
            "value_head.safetensors")


def _prepare_output_dir(cfg: Config, resume: str | None) -> None:
    """Start clean when ``overwrite_output_dir`` allows it, saying what goes; drop half-written checkpoints."""
    from ..callbacks import LOG_NAME

    out = Path(cfg.output_dir)
    partial = remove_partial_saves(out) if out.is_dir() else []
    if partial:
        print(f"[tunekit] removed {', '.join(partial)}: half-written by a run killed while saving", flush=True)
    if resume:
        print(f"[tunekit] resuming from {resume}", flush=True)
        return
    patterns = (*_OUTPUTS, LOG_NAME)
    found = sorted({p.name for pattern in patterns for p in out.glob(pattern)}) if out.is_dir() else []
    if found and cfg.overwrite_output_dir:
        shown = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        print(f"[tunekit] overwrite_output_dir: removing the previous run from {cfg.output_dir} ({shown}); "
              "training starts from the base model", flush=True)
        for pattern in patterns:
            for path in out.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _close_progress_bars(trainer) -> None:
    """End transformers' progress bar line, so that a message printed after it starts on a line of its own."""
    from transformers.trainer_callback import ProgressCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
            callback.training_bar.close()
            callback.training_bar = None


def _last_checkpoint_words(cfg: Config) -> str:
    last = last_checkpoint(cfg.output_dir)
    if last is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint is {last} (resume_from_checkpoint: true)"


def train(config: Config | str | dict, callbacks: list | None = None, *, reward_fn=None, progress: bool = True,
          **overrides) -> TrainResult:
    """Train ``config``'s stage end to end and save everything into ``output_dir``.

    ``callbacks`` are transformers ``TrainerCallback``s (panels use them to follow training).
    ``reward_fn`` (ppo with ``reward_model_type: function``): ``(prompts, responses) -> list of floats``;
    (grpo) one more reward function, or a list, called as trl calls them (see ``stages/grpo.py``).
    ``progress=False`` drops transformers' own progress bar and printed logs (a panel shows its own).
    Returns a ``TrainResult`` with the output folder, final metrics, the log path and the model.
    """
    cfg = load_config(config, **overrides)  # a copy: hardware fallbacks below never change the caller's config
    stage = stage_module(cfg)
    if reward_fn is not None and cfg.stage not in ("ppo", "grpo"):
        raise ConfigError(f"reward_fn is only used by stage: ppo or grpo (this config has stage={cfg.stage!r})")
    backend = activate(cfg)  # first: Unsloth must be imported before transformers, trl and peft
    from transformers import Trainer

    from ..callbacks import LogCallback, StopCallback, plot_metrics

    check_launch(cfg)
    check_output_dir(cfg)
    resume = _resume_path(cfg)
    # ppo's and grpo's rewards are checked (and loaded) first: a wrong one is reported before anything else loads
    extra = {"reward_fn": stage.reward_function(cfg, reward_fn)} if hasattr(stage, "reward_function") else {}
    say(f"[tunekit] {describe(cfg, backend)}")
    # The data is read before the model is loaded: a bad row is reported in a second, on its own.
    tokenizer = load_tokenizer(cfg)
    data = load_data(cfg, tokenizer)
    from transformers import set_seed

    set_seed(cfg.seed)
    model, tokenizer = load_model(cfg, head=getattr(stage, "HEAD", "causal_lm"), tokenizer=tokenizer)
    cuda = torch.cuda.is_available()
    degrade_for_hardware(cfg, cuda, cuda and torch.cuda.is_bf16_supported(), world_size())
    if is_main_process():
        _prepare_output_dir(cfg, resume)
    log = LogCallback(cfg.output_dir, resume_step=checkpoint_step(resume) if resume else 0)
    callbacks = list(callbacks or [])
    stopper = next((c for c in callbacks if isinstance(c, StopCallback)), None)
    if stopper is None:
        stopper = StopCallback()
        callbacks.append(stopper)
    if cfg.stage != "ppo":  # ppo's own loop keeps every activation
        decide_gradient_checkpointing(cfg, model, data)
    trainer = stage.build(cfg, model, tokenizer, data, [log, *callbacks], **extra)
    if isinstance(trainer, Trainer):
        guard_hf_trainer(trainer)  # ppo's own trainer does the same checks itself
    if not progress:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback
        from transformers.utils.notebook import NotebookProgressCallback

        for kind in (ProgressCallback, NotebookProgressCallback, PrinterCallback):
            trainer.callback_handler.remove_callback(kind)
    unit = "sequences (packed)" if cfg.use_packing and cfg.stage in ("pt", "sft") else "rows"
    processes = f"; {world_size()} processes" if world_size() > 1 else ""
    say(f"[tunekit] stage={cfg.stage} model={cfg.model_name_or_path} {trainable_summary(trainer.model)}; "
        f"{len(data['train'])} training {unit}{processes}")
    try:
        with ctrl_c_stops(stopper):
            output = trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:  # a second Ctrl-C: abort at once, keeping the checkpoints already written
        _close_progress_bars(trainer)
        say(f"[tunekit] aborted in step {trainer.state.global_step + 1}; {_last_checkpoint_words(cfg)}")
        raise
    except (TrainingError, RuntimeError) as err:
        if not isinstance(err, TrainingError) and "overflow" not in str(err):
            raise
        _close_progress_bars(trainer)
        what = err if isinstance(err, TrainingError) else (
            f"the optimizer step overflowed at step {trainer.state.global_step + 1} ({error_reason(err)})")
        raise TrainingError(
            f"{what} (learning_rate={cfg.learning_rate:g}); training stopped and nothing was saved after it; "
            f"{_last_checkpoint_words(cfg)}; lower learning_rate or check the data"
        ) from None
    metrics = dict(output.metrics)
    stopped = trainer.state.global_step < trainer.state.max_steps
    if stopped:
        say(f"[tunekit] stopped at step {trainer.state.global_step} of {trainer.state.max_steps}; checkpoint "
            f"saved in {cfg.output_dir}; resume with resume_from_checkpoint: true")
    if "eval" in data:  # a final evaluation, as LLaMA-Factory does whenever there is an eval split ...
        done = [r for r in trainer.state.log_history if "eval_loss" in r and r.get("step") == trainer.state.global_step]
        # ... unless eval_steps has just run one at this very step
        metrics.update({k: v for k, v in done[-1].items() if k.startswith("eval_")} if done else trainer.evaluate())
    drop_reference_adapter(trainer.model)
    save_outputs(trainer, tokenizer, cfg.output_dir, metrics)
    plots = [str(p) for p in plot_metrics(cfg.output_dir, list(stage.METRICS))] if cfg.plot_loss else []
    return TrainResult(output_dir=cfg.output_dir, metrics=metrics, log_path=str(log.path), plots=plots,
                       model=trainer.model, tokenizer=tokenizer, trainer=trainer, stopped=stopped)
