"""The run recipe: what ``tk.train``, ``tunekit train``, the TrainPanel and the bench all call.

    cfg = load_config("examples/sft_lora.yaml", max_steps=30)   # keys checked, then the stage's own rules
    p = plan(cfg)           # decided once: backend, launch, output folder, resume point, hardware fallbacks
    built = build(p)        # tokenizer -> rows -> model -> trainer (and the activation-checkpointing choice)
    result = fit(p, built)  # train, stop, errors, the final evaluation, save, plots

``train(cfg)`` is the three in a row. The config is never changed once it is checked: what the plan
decides lives in the ``Plan``. Everything a step needs to know about the stage comes from its
description (``tunekit.stages``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import activate, describe, import_first
from .config import Config, comma_list, read_config, validate
from .data import check_datasets
from .distributed import is_main_process, say, world_size
from .errors import ConfigError, TrainingError, TunekitError, error_reason, warn
from .outputs import (check_output_dir, checkpoint_step, last_checkpoint_words, prepare_output_dir, resume_point,
                      save_config, save_results)
from .stages import STAGES, Parts, Stage, stage_of


def load_config(source: str | os.PathLike | dict | Config | None = None, *args: str, data: Any = None,
                **overrides: Any) -> Config:
    """The one validated config: ``source`` (a YAML path, a dict, a ``Config`` or None for the defaults), then
    ``args`` (CLI-style ``"key=value"`` strings) and ``overrides`` (keywords), which win over the file.
    ``data``: rows in memory to train on instead of ``dataset`` (a list of dicts, a pandas DataFrame, a
    ``datasets.Dataset``, or a ``DatasetDict`` whose eval / test / validation split becomes ``eval_dataset``).

    Every key is checked (``config.py``), then the stage's own rules (its ``check``); anything wrong is a
    ``ConfigError`` with a one-line message naming the key and the fix. Where Unsloth is the backend it is
    imported first, before the checks import transformers.
    """
    if data is not None:
        from .data.sources import remember

        overrides = {**overrides, **remember(data)}
    raw = read_config(source, *args, **overrides)
    stage = STAGES.get(raw.get("stage", Config.stage))
    for key, value in (stage.defaults if stage else {}).items():  # a stage's own defaults, where the config is silent
        raw.setdefault(key, value)
    import_first(raw)
    cfg = validate(raw)
    stage = stage_of(cfg)
    stage.check(cfg)
    check_evaluation(cfg, stage)
    return cfg


def check_evaluation(cfg: Config, stage: Stage) -> None:
    """``do_predict`` and ``predict_with_generate`` against what the stage can predict (as LLaMA-Factory's rules)."""
    generating = [s.name for s in STAGES.values() if s.predict == "generate"]
    if cfg.predict_with_generate and stage.predict != "generate":
        raise ConfigError(f"predict_with_generate: true generates answers, which stage {' or '.join(generating)} "
                          f"does; stage={cfg.stage} evaluates with do_eval: true")
    if not cfg.do_predict:
        return
    if stage.predict is None:
        predicting = " and ".join(f"{s.name} ({'answers' if s.predict == 'generate' else 'scores'})"
                                  for s in STAGES.values() if s.predict)
        raise ConfigError(f"do_predict: true writes predictions for stage {predicting}; stage={cfg.stage} "
                          "evaluates with do_eval: true")
    if stage.predict == "generate" and not cfg.predict_with_generate:
        raise ConfigError(f"do_predict: true with stage={cfg.stage} generates answers; set predict_with_generate: true")


def load_data(cfg: Config | str | dict, tokenizer, data: Any = None):
    """The stage's training rows for ``cfg`` (a ``datasets.DatasetDict``: "train", and "eval" when
    ``val_size`` > 0). For pt and sft: ``input_ids``, ``attention_mask``, ``labels`` (-100 = no loss).
    ``data``: rows in memory instead of ``dataset`` (as ``load_config`` takes them)."""
    cfg = cfg if isinstance(cfg, Config) and data is None else load_config(cfg, data=data)
    return stage_of(cfg).prepare(cfg, tokenizer)


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What is decided once, before anything loads, and kept apart from the config it was decided for."""

    cfg: Config
    stage: Stage
    backend: str  # "hf" or "unsloth"
    processes: int  # 1, or the processes of a torchrun / accelerate launch
    resume: str | None  # the checkpoint to resume from
    bf16: bool  # the config's, unless the hardware cannot (then fp32)
    fp16: bool
    deepspeed: str | None  # the config's, without CUDA: None
    fsdp: dict  # {"fsdp": True, "fsdp_config": {...}} with CUDA, translated from LLaMA-Factory's string; else {}
    rewards: Any = None  # the stage's reward function(s), checked and loaded before anything else
    preprocess_only: bool = False  # tokenized_path names an empty place: prepare the rows, save them, stop
    gradient_checkpointing: bool | None = None  # decided by build, once the rows and the model are known
    estimate: Any = None  # the predicted peak memory and time (tunekit/estimate.py) of a training run

    def training_args(self, has_eval: bool) -> dict:
        """transformers ``TrainingArguments`` keywords: the config's, with this plan's decisions."""
        import torch

        cfg = self.cfg
        eval_strategy = cfg.eval_strategy if has_eval else "no"
        return dict(
            output_dir=cfg.output_dir,
            per_device_train_batch_size=cfg.per_device_train_batch_size,
            per_device_eval_batch_size=cfg.per_device_eval_batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=cfg.learning_rate,
            num_train_epochs=cfg.num_train_epochs,
            max_steps=cfg.max_steps,
            lr_scheduler_type=cfg.lr_scheduler_type,
            warmup_steps=cfg.warmup_steps or cfg.warmup_ratio,  # a float below 1 is a ratio
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm,
            optim=cfg.optim,
            logging_steps=cfg.logging_steps,
            logging_first_step=True,
            save_strategy=cfg.save_strategy,
            save_steps=cfg.save_steps,
            save_total_limit=cfg.save_total_limit,
            eval_strategy=eval_strategy,
            eval_steps=cfg.eval_steps or (cfg.logging_steps if eval_strategy == "steps" else None),
            bf16=self.bf16,
            fp16=self.fp16,
            seed=cfg.seed,
            gradient_checkpointing=bool(self.gradient_checkpointing),
            ddp_timeout=cfg.ddp_timeout,
            deepspeed=self.deepspeed,
            report_to=comma_list(cfg.report_to) or "none",
            dataloader_num_workers=cfg.dataloader_num_workers,
            dataloader_pin_memory=torch.cuda.is_available(),
            # without CUDA, a multi-process launch (torchrun, accelerate launch) is data-parallel over gloo
            use_cpu=not torch.cuda.is_available(),
            remove_unused_columns=False,
            # LoRA leaves no parameter unused: DDP need not search the graph for them every step (LLaMA-Factory's
            # default for LoRA); a ddp_find_unused_parameters in the config wins
            ddp_find_unused_parameters=False if cfg.finetuning_type == "lora" else None,
        ) | {k: v for k, v in cfg.training_args.items() if k not in FSDP_KEYS} | self.fsdp


def plan(config: Config | str | dict, *, reward_fn=None, cuda: bool | None = None, **overrides) -> Plan:
    """Check what can be checked before anything loads, and decide what the hardware allows.

    ``reward_fn`` (stages with rewards: ppo, grpo) is checked and resolved here with the stage's other
    rewards, so that a wrong one is reported before the model loads. ``cuda`` is the probe of the
    machine (found out when None; tests pass it)."""
    cfg = load_config(config, **overrides)
    stage = stage_of(cfg)
    if reward_fn is not None and stage.rewards is None:
        stages = " or ".join(s.name for s in STAGES.values() if s.rewards is not None)
        raise ConfigError(f"reward_fn is only used by stage: {stages} (this config has stage={cfg.stage!r})")
    if not (cfg.do_train or cfg.do_eval or cfg.do_predict):
        raise ConfigError("do_train, do_eval and do_predict are all false, so there is nothing to run; set do_train: "
                          "true to train, or do_eval / do_predict: true to evaluate or predict on held-out rows")
    if cfg.do_train and cfg.tokenized_path:
        check_tokenized_path(cfg.tokenized_path)
    preprocess_only = cfg.do_train and bool(cfg.tokenized_path) and not saved_rows_exist(cfg.tokenized_path)
    if preprocess_only or not (cfg.do_train and cfg.tokenized_path):
        check_datasets(cfg)  # a data set that is not there is answered before torch is imported
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    backend = activate(cfg, stage, cuda=cuda)  # first: Unsloth must be imported before transformers, trl and peft
    if world_size() > 1 and not stage.multi_process:
        raise ConfigError(
            f"stage={cfg.stage!r} runs in a single process, and this launch has {world_size()} (WORLD_SIZE); "
            f"run it with plain `tunekit train`, not torchrun or accelerate launch"
        )
    if not preprocess_only:  # a preprocessing run writes nothing into output_dir
        check_output_dir(cfg)
    resume = resume_point(cfg) if cfg.do_train and not preprocess_only else None
    rewards = stage.rewards(cfg, reward_fn) if stage.rewards is not None else None
    bf16_ok = cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    predicted = None
    if cfg.do_train and not preprocess_only:  # what the run will cost: memory and time (tunekit/estimate.py)
        from .estimate import estimate, sample_length

        try:
            length, rows = sample_length(cfg, stage)
            predicted = estimate(cfg, stage, length=length, rows=rows, cuda=cuda and torch.cuda.is_available())
        except (TunekitError, OSError, ValueError) as err:  # the model's own loading says what is wrong, next
            say(f"[tunekit] plan: not made ({error_reason(err)})")
    return Plan(cfg=cfg, stage=stage, backend=backend, processes=world_size(), resume=resume, rewards=rewards,
                preprocess_only=preprocess_only, estimate=predicted, **hardware_fallbacks(cfg, cuda, bf16_ok, world_size()))


def hardware_fallbacks(cfg: Config, cuda: bool, bf16_ok: bool, processes: int) -> dict:
    """``bf16``, ``fp16`` and ``deepspeed`` as this machine can run them: a key that cannot apply is turned
    off with one warning (never a crash); the config keeps what it said."""
    bf16, fp16, deepspeed = cfg.bf16, cfg.fp16, cfg.deepspeed
    if bf16 and not (cuda and bf16_ok):
        warn(f"bf16: true is not supported on this {'GPU' if cuda else 'CPU'} run; training in fp32 instead")
        bf16 = False
    if cfg.pure_bf16 and not (cuda and bf16_ok):
        warn(f"pure_bf16: true needs a GPU with bf16; this {'GPU' if cuda else 'CPU'} run trains in fp32 instead")
    if fp16 and not cuda:
        warn("fp16: true needs a CUDA GPU; training in fp32 instead")
        fp16 = False
    if processes == 1 and cfg.ddp_timeout != Config.ddp_timeout:
        warn(f"ddp_timeout={cfg.ddp_timeout} only applies to multi-process runs; kept for those, unused here")
    if deepspeed and not cuda:
        warn(f"deepspeed={cfg.deepspeed!r} needs CUDA GPUs; ignored on this CPU run")
        deepspeed = None
    return {"bf16": bf16, "fp16": fp16, "deepspeed": deepspeed, "fsdp": fsdp_args(cfg, cuda, processes)}


FSDP_KEYS = ("fsdp", "fsdp_config")
# LLaMA-Factory's fsdp words (transformers' legacy string) as the fsdp_config entries transformers keeps (FSDP2)
_FSDP_WORDS = {"full_shard": {"reshard_after_forward": True}, "shard_grad_op": {"reshard_after_forward": False},
               "offload": {"cpu_offload": True}, "auto_wrap": {}}


def fsdp_args(cfg: Config, cuda: bool, processes: int) -> dict:
    """``fsdp`` in the form transformers keeps (``fsdp: true`` and ``fsdp_config``), translated from LLaMA-Factory's
    string (``full_shard auto_wrap``); where FSDP cannot apply (no CUDA), one warning and nothing."""
    fsdp, config = cfg.training_args.get("fsdp"), cfg.training_args.get("fsdp_config")
    if not fsdp or fsdp in ("false", "False"):
        return {}
    if not cuda:
        words = f"; this launch of {processes} processes trains with plain DDP" if processes > 1 else ""
        warn(f"fsdp={fsdp!r} needs CUDA GPUs; ignored on this CPU run{words}")
        return {}
    if isinstance(config, str):
        config = json.loads(Path(config).read_text(encoding="utf-8"))
    config = dict(config or {})
    for word in ([] if fsdp is True or fsdp in ("true", "True") else str(fsdp).split()):
        if word not in _FSDP_WORDS:
            raise ConfigError(f"fsdp={fsdp!r}: {word!r} is not an FSDP option transformers keeps; use words from: "
                              f"{', '.join(_FSDP_WORDS)} (or fsdp: true with fsdp_config)")
        for key, value in _FSDP_WORDS[word].items():
            config.setdefault(key, value)
    return {"fsdp": True, "fsdp_config": config}


def gradient_checkpointing(p: Plan, model) -> bool:
    """Unless the config sets ``gradient_checkpointing``, the plan's choice (``estimate.py``): on only when one
    micro-batch's activations would take more than half the memory there is (it costs about a third more compute);
    the log says which was chosen and why. A stage with its own loop (ppo) keeps every activation."""
    cfg = p.cfg
    if not p.stage.trainer_loop:
        return False
    if getattr(model, "tunekit_backend", None) == "unsloth":  # Unsloth wrapped the layers when it loaded them
        how = "off (set in the config)" if cfg.gradient_checkpointing is False else (
            "Unsloth's, activations offloaded to CPU memory (gradient_checkpointing: false turns it off)")
        say(f"[tunekit] gradient checkpointing: {how}")
        return False  # the Trainer must not wrap them a second time
    if cfg.gradient_checkpointing is not None:
        say(f"[tunekit] gradient checkpointing: {'on' if cfg.gradient_checkpointing else 'off'} (set in the config)")
        return cfg.gradient_checkpointing
    est = p.estimate
    on = bool(est and est.gradient_checkpointing)
    need = est.without_checkpointing if est else 0
    where = "free on the GPU" if est and est.device == "cuda" else "available"
    free = est.free if est else 0
    if on:
        say(f"[tunekit] gradient checkpointing: on (a batch's activations would need about {need / 2**30:.1f} GiB; "
            f"{max(free, 0) / 2**30:.1f} GiB {where}; set gradient_checkpointing to choose)")
    else:  # LLaMA-Factory's default is on: say what off costs in memory, and what it buys
        say(f"[tunekit] gradient checkpointing: off, for speed (no forward pass recomputed in the backward one): it "
            f"keeps about {need / 2**30:.1f} GiB of activations per batch that LLaMA-Factory's default (on) would "
            f"recompute; {max(free, 0) / 2**30:.1f} GiB {where}; gradient_checkpointing: true trades them for time")
    return on


# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------


def lm_head_mixin(p: Plan) -> tuple:
    """``CompactLMHead`` for a stage whose trl trainer uses trl's fused LM head, on a machine without CUDA
    (there trl's head scores every position and recomputes it in the backward pass: tunekit/lm_head.py)."""
    from .backends import cuda_available
    from .lm_head import CompactLMHead

    return (CompactLMHead,) if p.stage.fused_lm_head(p.cfg) and not cuda_available() else ()


PISSA_INIT = "pissa_init"  # in output_dir with pissa_convert: the adapter as it started
ROWS_NOTE = "tunekit_rows.json"  # beside the saved rows: the stage and model they were prepared for


def check_tokenized_path(path: str) -> None:
    """``tokenized_path`` must be a folder: a new or empty one (the rows are saved there) or one that a run saved rows
    into; a file, or a folder of something else, is a ``ConfigError`` (and is left as it is)."""
    saved = ("dataset_dict.json", "dataset_info.json", "state.json")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"tokenized_path={path!r} is a file; it must be a folder: a new one (the prepared rows are "
                          "saved there) or one that a previous run saved rows into")
    if saved_rows_exist(path) and not any(os.path.isfile(os.path.join(path, name)) for name in saved):
        raise ConfigError(f"tokenized_path={path!r} is a folder that holds something other than saved rows; give a "
                          "new or empty folder (the prepared rows are saved there) or one that a previous run saved "
                          "rows into")


def saved_rows_exist(path: str) -> bool:
    """Whether ``tokenized_path`` holds saved rows (as LLaMA-Factory: a folder that is not empty)."""
    return os.path.isdir(path) and bool(os.listdir(path))


def rows(p: Plan, tokenizer):
    """The stage's rows: prepared from the data sets, or, with ``tokenized_path``, loaded from there when they
    were saved before (nothing is tokenized again; the data keys are then not read), as LLaMA-Factory does."""
    cfg = p.cfg
    if not cfg.tokenized_path or p.preprocess_only:
        return p.stage.prepare(cfg, tokenizer)
    import datasets

    note_path = os.path.join(cfg.tokenized_path, ROWS_NOTE)
    note = json.loads(open(note_path, encoding="utf-8").read()) if os.path.isfile(note_path) else {}
    if note.get("stage", cfg.stage) != cfg.stage:
        raise ConfigError(f"tokenized_path={cfg.tokenized_path!r} holds rows prepared for stage={note['stage']}, and "
                          f"this run is stage={cfg.stage}; give another tokenized_path, or remove that folder")
    try:
        data = datasets.load_from_disk(cfg.tokenized_path)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"tokenized_path={cfg.tokenized_path!r} is not a folder of saved rows ({error_reason(err, cfg.tokenized_path)}); "
                          "give an empty or new folder to save them there first") from None
    data = data if isinstance(data, datasets.DatasetDict) else datasets.DatasetDict({"train": data})
    say(f"[tunekit] rows loaded from tokenized_path={cfg.tokenized_path} ({len(data['train'])} training rows); "
        "dataset, cutoff_len and the other data keys are not read again")
    return data


def save_rows(p: Plan) -> int:
    """Prepare the stage's rows and save them to ``tokenized_path`` (``datasets.save_to_disk``); returns how many
    training rows were saved. A later run with the same ``tokenized_path`` trains on them."""
    from .models import load_tokenizer

    cfg = p.cfg
    data = p.stage.prepare(cfg, load_tokenizer(cfg, backend=p.backend))
    if is_main_process():
        data.save_to_disk(cfg.tokenized_path)
        note = {"stage": cfg.stage, "model_name_or_path": cfg.model_name_or_path, "dataset": cfg.dataset,
                "cutoff_len": cfg.cutoff_len}
        with open(os.path.join(cfg.tokenized_path, ROWS_NOTE), "w", encoding="utf-8") as handle:
            json.dump(note, handle, indent=2)
    say(f"[tunekit] saved {len(data['train'])} prepared training rows to tokenized_path={cfg.tokenized_path}; "
        "training did not start: run the same config again to train on them")
    return len(data["train"])


@dataclass
class Built:
    """A run put together: its trainer, and what the trainer was made from."""

    trainer: Any
    tokenizer: Any
    data: Any
    log: Any  # the LogCallback writing trainer_log.jsonl


def build(p: Plan, callbacks: list | None = None, *, progress: bool = True) -> Built:
    """Tokenizer -> rows -> model -> trainer. The data is read before the model is loaded: a bad row is
    reported in a second, on its own. ``progress=False`` drops transformers' own progress bar and printed
    logs (a panel shows its own)."""
    from .models import load_tokenizer

    cfg, stage = p.cfg, p.stage
    if p.estimate is not None:  # the peak measured after the run is this run's alone (not tk.plan's caller's)
        from .estimate import start_measuring

        start_measuring(p.estimate.device == "cuda")
    say(f"[tunekit] {describe(cfg, p.backend, stage)}")
    tokenizer = load_tokenizer(cfg, backend=p.backend)
    data = rows(p, tokenizer)
    # the training libraries are imported once the rows are read: a data error is answered before them
    from transformers import set_seed

    from . import extras
    from .callbacks import LogCallback, StopCallback
    from .models import linear_module_names, load_model

    set_seed(cfg.seed)
    model, tokenizer = load_model(cfg, stage=stage, tokenizer=tokenizer, backend=p.backend)
    if is_main_process() and cfg.do_train:
        prepare_output_dir(cfg, p.resume)
    p.gradient_checkpointing = cfg.do_train and gradient_checkpointing(p, model)
    if p.estimate is not None:
        say(f"[tunekit] plan: {p.estimate.line()}")
    # the log of a training run (a run that only evaluates leaves the trained folder's log as it is)
    log = LogCallback(cfg.output_dir, resume_step=checkpoint_step(p.resume) if p.resume else 0) if cfg.do_train else None
    callbacks = list(callbacks or [])
    if not any(isinstance(c, StopCallback) for c in callbacks):
        callbacks.append(StopCallback())  # Ctrl-C asks it for a clean stop
    if cfg.pissa_convert and cfg.do_train and is_main_process():  # the starting adapter, to convert the trained one
        model.save_pretrained(os.path.join(cfg.output_dir, PISSA_INIT))
    args = p.training_args("eval" in data) | extras.galore_args(cfg, linear_module_names(model))
    given = data if "train" in data else data | {"train": data["eval"]}  # trl's trainers want a training set: a
    # run that does not train hands them the held-out rows, and never steps through them
    trainer = stage.build(Parts(cfg=cfg, args=args, model=model, tokenizer=tokenizer, data=given,
                                callbacks=[c for c in (log, *callbacks) if c is not None], rewards=p.rewards,
                                mixins=extras.mixins(cfg) + lm_head_mixin(p)))
    if not cfg.do_train:  # measured against the model without the adapter, not against a copy of the adapter
        from .stages.preference import drop_reference_adapter

        drop_reference_adapter(trainer.model)
    if not progress:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback
        from transformers.utils.notebook import NotebookProgressCallback

        for kind in (ProgressCallback, NotebookProgressCallback, PrinterCallback):
            trainer.callback_handler.remove_callback(kind)
    from .models import trainable_summary

    unit = "sequences (packed)" if stage.packed(cfg) else "rows"
    processes = f"; {p.processes} processes" if p.processes > 1 else ""
    rows_said = f"{len(data['train'])} training {unit}" if "train" in data else f"{len(data['eval'])} held-out {unit}"
    say(f"[tunekit] stage={cfg.stage} model={cfg.model_name_or_path} {trainable_summary(trainer.model)}; "
        f"{rows_said}{processes}")
    return Built(trainer=trainer, tokenizer=tokenizer, data=data, log=log)


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------


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


def fit(p: Plan, built: Built) -> TrainResult:
    """Train (Ctrl-C and Stop end at a step with a checkpoint; a NaN loss or an overflow is a ``TrainingError``
    that names the last good checkpoint), evaluate on the eval split, save, plot; then, as the config asks,
    ``do_eval`` (``eval_results.json``) and ``do_predict`` (``predict.py``). A run with ``do_train: false``
    only evaluates and predicts, and writes nothing but those result files."""
    cfg, trainer = p.cfg, built.trainer
    metrics, stopped, plots = {}, False, []
    if cfg.do_train:
        metrics, stopped, plots = _train(p, built)
    if cfg.do_eval:
        if not cfg.do_train:
            metrics.update(evaluate_held_out(p, trainer))
        evaluated = {k: v for k, v in metrics.items() if k.startswith("eval_") or k == "perplexity"}
        if is_main_process():
            save_results(cfg.output_dir, "eval", evaluated)
        say("[tunekit] held-out evaluation: " + ", ".join(f"{k} {v:.4g}" for k, v in evaluated.items()
                                                          if isinstance(v, (int, float)) and not k.endswith("_second")))
    if cfg.do_predict:
        from .predict import predict

        metrics.update(predict(p, built))
    return TrainResult(output_dir=cfg.output_dir, metrics=metrics, log_path=str(built.log.path) if built.log else "",
                       plots=plots, model=trainer.model, tokenizer=built.tokenizer, trainer=trainer, stopped=stopped)


def _train(p: Plan, built: Built) -> tuple[dict, bool, list[str]]:
    """Train, evaluate on the eval split, save, plot: (metrics, stopped early?, plot paths)."""
    from .callbacks import plot_metrics
    from .safety import save_outputs
    from .stages.preference import drop_reference_adapter

    cfg, trainer = p.cfg, built.trainer
    try:
        output = trainer.train(resume_from_checkpoint=p.resume)
    except KeyboardInterrupt:  # a second Ctrl-C: abort at once, keeping the checkpoints already written
        _close_progress_bars(trainer)
        say(f"[tunekit] aborted in step {trainer.state.global_step + 1}; {last_checkpoint_words(cfg)}")
        raise
    except (TrainingError, RuntimeError) as err:
        if not isinstance(err, TrainingError) and "overflow" not in str(err):
            raise
        _close_progress_bars(trainer)
        what = err if isinstance(err, TrainingError) else (
            f"the optimizer step overflowed at step {trainer.state.global_step + 1} ({error_reason(err)})")
        raise TrainingError(
            f"{what} (learning_rate={cfg.learning_rate:g}); training stopped and nothing was saved after it; "
            f"{last_checkpoint_words(cfg)}; lower learning_rate or check the data"
        ) from None
    metrics = dict(output.metrics)
    stopped = trainer.state.global_step < trainer.state.max_steps
    if stopped:
        say(f"[tunekit] stopped at step {trainer.state.global_step} of {trainer.state.max_steps}; checkpoint "
            f"saved in {cfg.output_dir}; resume with resume_from_checkpoint: true")
    if "eval" in built.data:  # a final evaluation, as LLaMA-Factory does whenever there is an eval split ...
        done = [r for r in trainer.state.log_history if "eval_loss" in r and r.get("step") == trainer.state.global_step]
        # ... unless eval_steps has just run one at this very step
        final = {k: v for k, v in done[-1].items() if k.startswith("eval_")} if done else trainer.evaluate()
        metrics.update(with_perplexity(p.stage, final))
    drop_reference_adapter(trainer.model)
    if p.estimate is not None:  # predicted and measured, side by side
        from .callbacks import read_log
        from .estimate import against_measurement

        metrics.update(against_measurement(p.estimate, read_log(built.log.path) if built.log else []))
    save_outputs(trainer, built.tokenizer, cfg.output_dir, metrics)
    if is_main_process():  # written at the end: under torchrun, the other processes may still be checking the folder
        save_config(cfg)
    if cfg.pissa_convert and is_main_process():  # the PiSSA adapter as a plain LoRA one, for any base loader
        converted = os.path.join(cfg.output_dir, "pissa_converted")
        trainer.model.save_pretrained(converted, path_initial_model_for_weight_conversion=os.path.join(
            cfg.output_dir, PISSA_INIT))
        say(f"[tunekit] the PiSSA adapter converted to a plain LoRA adapter: {converted}")
    plots = [str(x) for x in plot_metrics(cfg.output_dir, list(p.stage.metrics))] if cfg.plot_loss else []
    return metrics, stopped, plots


def evaluate_held_out(p: Plan, trainer) -> dict:
    """The stage's evaluation of the held-out rows, batched (``per_device_eval_batch_size``): held-out loss and
    perplexity (pt, sft), pairwise accuracy (rm), reward accuracy and margins (dpo, kto; against the model
    without the adapter), reward and KL (ppo, grpo)."""
    return with_perplexity(p.stage, trainer.evaluate())


def with_perplexity(stage: Stage, metrics: dict) -> dict:
    """``metrics`` with ``perplexity`` (exp of ``eval_loss``) for a stage that reports it, as LLaMA-Factory's pt does."""
    import math

    if not stage.perplexity or "eval_loss" not in metrics:
        return metrics
    return metrics | {"perplexity": math.exp(metrics["eval_loss"]) if metrics["eval_loss"] < 700 else float("inf")}


def _close_progress_bars(trainer) -> None:
    """End transformers' progress bar line, so that a message printed after it starts on a line of its own."""
    from transformers.trainer_callback import ProgressCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
            callback.training_bar.close()
            callback.training_bar = None


def train(config: Config | str | dict, callbacks: list | None = None, *, reward_fn=None, progress: bool = True,
          data: Any = None, **overrides) -> TrainResult:
    """Train ``config``'s stage end to end and save everything into ``output_dir``: plan, build, fit.

    ``data``: rows in memory to train on (a list of dicts, a pandas DataFrame, a ``datasets.Dataset`` or a
    ``DatasetDict`` with a held-out split), in place of ``dataset``; they are written beside the outputs and
    named in its ``training_args.yaml``, so that ``tunekit train`` on that file repeats the run.

    ``callbacks`` are transformers ``TrainerCallback``s (panels use them to follow training).
    ``reward_fn`` (ppo with ``reward_model_type: function``): ``(prompts, responses) -> list of floats``;
    (grpo) one more reward function, or a list, called as trl calls them (see ``stages/grpo.py``).
    ``progress=False`` drops transformers' own progress bar and printed logs (a panel shows its own).
    Returns a ``TrainResult`` with the output folder, final metrics, the log path and the model.
    """
    return run_plan(plan(config, reward_fn=reward_fn, data=data, **overrides), callbacks, progress=progress)


def run_plan(p: Plan, callbacks: list | None = None, *, progress: bool = True) -> TrainResult:
    """Build and fit a planned run; with a ``tokenized_path`` that holds nothing yet, prepare and save the rows
    and stop there, as LLaMA-Factory does."""
    if p.preprocess_only:
        saved = save_rows(p)
        return TrainResult(output_dir=p.cfg.output_dir, metrics={"saved_rows": saved}, log_path="")
    return fit(p, build(p, callbacks, progress=progress))
