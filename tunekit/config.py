"""The config: every key tunekit reads (``Config``), read from YAML (or a dict) plus ``key=value`` overrides.

Keys and meanings follow LLaMA-Factory, so its users' YAML runs unchanged. Every problem is a
``ConfigError`` whose one-line message names the key, the value and what would be accepted.
This module checks every key and the combinations that hold for every stage; a stage's own rules
(kto's batch of two, ppo's reward model, grpo's groups) are in the stage's module, as its
``check``, and ``tunekit.load_config`` (``run.py``) applies both. Nothing here imports the rest of
tunekit but the errors and the template names: every other module may import this one.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import ConfigError, DataError, TrainingError, TunekitError, error_reason, warn  # noqa: F401 (re-exported)
from .templates import check_template_name


FINETUNING_TYPES = ("lora", "freeze", "full")
PREF_LOSSES = ("sigmoid", "hinge", "ipo", "orpo", "simpo")
BACKENDS = ("auto", "hf", "unsloth")
REWARD_MODEL_TYPES = ("lora", "full", "function")
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay",
)
GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")  # trl 1.16's GRPOConfig
GGUF_TYPES = ("f16", "q8_0")  # export_gguf: the GGUF file's weight types (tunekit/gguf.py writes them)
EVAL_STRATEGIES = ("no", "steps", "epoch")
SAVE_STRATEGIES = ("no", "steps", "epoch", "best")
_CHOICES = {
    "eval_strategy": EVAL_STRATEGIES,
    "save_strategy": SAVE_STRATEGIES,
    "finetuning_type": FINETUNING_TYPES,
    "pref_loss": PREF_LOSSES,
    "backend": BACKENDS,
    "reward_model_type": REWARD_MODEL_TYPES,
    "lr_scheduler_type": LR_SCHEDULERS,
    "loss_type": GRPO_LOSS_TYPES,
    "importance_sampling_level": ("token", "sequence"),
    "scale_rewards": ("group", "batch", "none"),
    "flash_attn": ("auto", "disabled", "sdpa", "fa2", "fa3"),
}
# Sizes that must be >= 1, and numbers that must be >= 0.
_POSITIVE = (
    "cutoff_len", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "lora_rank", "logging_steps", "save_steps", "max_new_tokens",
    "ppo_epochs", "ppo_buffer_size", "max_samples", "lora_alpha", "ppo_horizon", "num_iterations",
)
_NON_NEGATIVE = (
    "learning_rate", "num_train_epochs", "warmup_ratio", "warmup_steps", "weight_decay", "lora_dropout",
    "val_size", "pref_beta", "pref_ftx", "simpo_gamma", "kto_chosen_weight", "kto_rejected_weight",
    "max_grad_norm", "temperature", "top_p", "top_k", "ppo_target", "ppo_gamma", "ppo_lambda", "ppo_cliprange",
    "ppo_cliprange_value", "ppo_vf_coef", "ppo_init_kl_coef", "epsilon", "epsilon_high", "delta",
    "top_entropy_quantile", "lmbda",
)


@dataclass
class Config:
    """Every key tunekit reads. Names, meanings and defaults follow LLaMA-Factory."""

    # --- model -------------------------------------------------------------------------------
    model_name_or_path: str = "smollm2-135m-instruct"  # alias, local folder or hub id
    adapter_name_or_path: str | None = None  # saved LoRA adapter(s) to continue from (comma list)
    template: str | None = None  # LLaMA-Factory's name; the tokenizer's own template is used where it has one
    enable_thinking: bool = True  # false: thinking off in the chat template (as the *_nothink templates do)
    preserve_thinking: bool = False  # keep earlier answers' reasoning (templates that read it; LLaMA-Factory's key)
    trust_remote_code: bool = False  # run the code a hub model ships (its own modeling / tokenizer files); for models you trust
    cache_dir: str | None = None  # where hub models are downloaded to (default: the Hugging Face cache)
    backend: str = "auto"  # auto | hf | unsloth
    quantization_bit: int | None = None  # 4 | 8: QLoRA, the base quantized as it loads (bitsandbytes or Unsloth); lora only, CUDA
    flash_attn: str = "auto"  # attention kernel: auto (transformers' choice) | disabled (eager) | sdpa | fa2 | fa3
    # (fa2, fa3: the flash-attn package on a CUDA GPU, else transformers' choice; Unsloth picks its own)
    # --- method ------------------------------------------------------------------------------
    stage: str = "sft"  # pt | sft | rm | ppo | dpo | kto | grpo | rloo | distill: the training method (tunekit/stages)
    do_train: bool = True  # unless the config sets do_eval or do_predict without it (then false, as in LLaMA-Factory)
    do_eval: bool = False  # evaluate on eval_dataset / the val_size split (after training, or alone: do_train: false)
    do_predict: bool = False  # sft: generate an answer per held-out row (predict_with_generate); rm: score each pair
    predict_with_generate: bool = False  # sft: do_predict generates answers and scores them with BLEU-4 / ROUGE
    finetuning_type: str = "lora"  # lora | freeze | full: what trains (QLoRA is lora with quantization_bit)
    lora_target: str = "all"  # "all" = every linear layer but the output head, or a comma list
    lora_rank: int = 8  # LoRA's rank r: the inner dimension of each adapter's two matrices
    lora_alpha: int | None = None  # default: 2 x lora_rank, as in LLaMA-Factory
    lora_dropout: float = 0.0  # dropout on the LoRA branch's input (below 1; 0.05 is usual)
    additional_target: str | None = None  # extra modules trained and saved in full with the adapter
    freeze_trainable_layers: int = 2  # last n layers (first n when negative)
    freeze_trainable_modules: str = "all"  # freeze: the trainable layers' modules that train: all, or a comma list (mlp,self_attn)
    freeze_extra_modules: str | None = None  # freeze: modules outside the layers that also train (comma list: embed_tokens,norm)
    # LoRA variants and LLaMA-Factory's extras (docs/config.md, "LoRA variants"), each through the library that has it
    use_dora: bool = False  # DoRA: weight-decomposed LoRA (peft)
    use_rslora: bool = False  # rank-stabilised LoRA: scaling lora_alpha / sqrt(lora_rank) (peft)
    pissa_init: bool = False  # PiSSA: the adapter starts from the weights' principal singular vectors (peft)
    pissa_iter: int = 16  # fast-SVD iterations for PiSSA; -1: an exact SVD
    pissa_convert: bool = False  # also save the trained PiSSA adapter as a plain LoRA one (output_dir/pissa_converted)
    loraplus_lr_ratio: float | None = None  # LoRA+: the B matrices learn this many times faster (peft)
    loraplus_lr_embedding: float = 1.0e-6  # LoRA+: the learning rate of embedding adapters
    use_llama_pro: bool = False  # LLaMA Pro: only the expanded blocks train (freeze_trainable_layers of them, strided)
    use_dft_loss: bool = False  # sft: dynamic fine-tuning, each token's loss weighted by its probability
    use_muon: bool = False  # the Muon optimizer for the hidden layers' matrices (torch.optim.Muon), AdamW for the rest
    use_galore: bool = False  # GaLore: low-rank gradient projection (transformers' galore optimizers; galore-torch)
    galore_target: str = "all"  # GaLore: the linear layers it projects: all (every one but the output heads) or a comma list
    galore_rank: int = 16  # GaLore: the rank of the projected gradients
    galore_update_interval: int = 200  # GaLore: steps between recomputing the projection (update_proj_gap)
    galore_scale: float = 2.0  # GaLore: the scale of the projected update
    galore_proj_type: str = "std"  # GaLore: std | reverse_std | right | left | full (galore-torch's proj_type)
    galore_layerwise: bool = False  # GaLore: each layer's optimizer steps during the backward pass, to save memory
    # preference stages (rm, dpo, kto) and ppo
    pref_beta: float = 0.1  # dpo, kto: beta (orpo: lambda); grpo, rloo: KL weight; distill: the divergence (default 1 there)
    pref_loss: str = "sigmoid"  # dpo: sigmoid (DPO) | hinge | ipo | orpo | simpo (orpo and simpo without a reference model)
    pref_ftx: float = 0.0  # dpo: weight of an SFT loss on the chosen answers (simpo: cpo_alpha; orpo has its own); kto: ignored
    simpo_gamma: float = 0.5  # dpo with pref_loss simpo: the target reward margin
    precompute_ref_log_probs: bool | None = None  # dpo/kto: None = when rows are seen more than once (epochs > 1)
    kto_chosen_weight: float = 1.0  # kto: weight of the good answers' losses (trl's desirable_weight)
    kto_rejected_weight: float = 1.0  # kto: weight of the bad answers' losses (undesirable_weight); raise the rarer class's
    reward_model: str | None = None  # ppo: an rm run's output_dir (or module:function); grpo, rloo: an rm output, one more reward
    reward_model_type: str = "lora"  # ppo: lora | full (both read from the folder) | function (reward_model is module:function)
    ppo_epochs: int = 4  # ppo: passes over each rollout buffer's mini-batches per step
    ppo_buffer_size: int = 1  # ppo: a step samples batch x accumulation x this many prompts (the rollout buffer)
    ppo_target: float = 6.0  # ppo: the KL the adaptive controller steers towards; 0: the KL coefficient stays ppo_init_kl_coef
    ppo_score_norm: bool = False  # ppo: normalise the scores by their running mean and standard deviation
    ppo_whiten_rewards: bool = False  # ppo: scale the per-token rewards to unit spread (mean kept) before GAE
    ppo_gamma: float = 1.0  # GAE discount
    ppo_lambda: float = 0.95  # GAE lambda
    ppo_cliprange: float = 0.2  # clip range of the policy ratio
    ppo_cliprange_value: float = 0.2  # clip range of the value update
    ppo_vf_coef: float = 0.1  # weight of the value loss
    ppo_init_kl_coef: float = 0.2  # starting KL coefficient (adapted towards ppo_target)
    ppo_horizon: int = 10000  # the adaptive KL controller's horizon
    # grpo (pref_beta is its KL weight)
    num_generations: int = 4  # answers sampled per prompt; batch x accumulation counts answers: a multiple of it
    num_generations_eval: int | None = None  # answers per held-out prompt in the trainer's evaluation (trl's key); default num_generations
    reward_funcs: str = "accuracy,format"  # comma list: accuracy, format, length (tunekit/rewards.py), module:function
    reward_weights: str | None = None  # one number per reward (reward_model last); default: 1 each
    # grpo's variants (and rloo's clipping): trl's keys, names and defaults, passed to its config (docs/stages/grpo.md);
    # grpo: dapo's loss, clip-higher and sequence-level ratios are Dr. GRPO, DAPO and GSPO
    loss_type: str = "dapo"  # grpo: how the token losses are averaged: grpo (per answer), dr_grpo, dapo, bnpo, ...
    importance_sampling_level: str = "token"  # grpo: token, or sequence (GSPO: one ratio per answer)
    scale_rewards: str = "group"  # grpo: advantages divided by the group's spread, the batch's, or none (Dr. GRPO)
    epsilon: float = 0.2  # grpo, rloo: the policy ratio is clipped to [1 - epsilon, 1 + epsilon_high]
    epsilon_high: float | None = None  # grpo, rloo: the upper clip (DAPO's clip-higher: 0.28); default epsilon
    delta: float | None = None  # grpo: a second upper bound on the ratio for negative advantages (two-sided GRPO)
    mask_truncated_completions: bool = False  # grpo, rloo: answers cut at max_new_tokens carry no loss (DAPO)
    num_iterations: int = 1  # grpo, rloo: updates per batch of answers (the ratio moves from 1 after the first)
    top_entropy_quantile: float = 1.0  # grpo: only this share of answer tokens, the most uncertain, carry the loss
    # distill: on-policy distillation (pref_beta is its divergence: 0 forward KL, 1 reverse KL, between: JSD)
    teacher_model: str | None = None  # the teacher: a model folder, a tunekit output (adapter), a hub id or alias
    lmbda: float = 1.0  # distill: the share of steps on the student's own answers (the rest: the data's answers)
    # --- dataset -----------------------------------------------------------------------------
    dataset: str | None = None  # comma list: names in dataset_info.json, files or folders, hub ids (org/name[:split])
    eval_dataset: str | None = None  # held-out sets, named as dataset is
    dataset_dir: str = "data"  # a folder with dataset_info.json; the bundled sets are always known
    dataset_split: str = "train"  # the split read from a hub id or a saved DatasetDict (org/name:split names one)
    cutoff_len: int = 2048  # most tokens per row, prompt + answer (longer sft rows are cut turn by turn); pt: the block size
    max_samples: int | None = None  # read at most the first n rows of each data set (for quick runs)
    val_size: float = 0.0  # fraction (< 1) or number of rows (>= 1) held out for evaluation
    packing: bool | None = None  # default: on for pt, off otherwise (sft: see docs/speed.md for why)
    train_on_prompt: bool = False  # sft: the prompt tokens carry loss too, not only the answers
    mask_history: bool = False  # sft: only the last answer carries loss (and keeps its tokens first when a row is cut)
    overwrite_cache: bool = False  # not used: rows are tokenized in memory on every run, with no cache (see tokenized_path)
    tokenized_path: str | None = None  # save the prepared rows here and stop; when it holds them, train on them
    preprocessing_num_workers: int | None = None  # not used: rows are tokenized in the main process
    identity_name: str = "Tuna"  # fills {{name}} in data sets (the bundled `identity`)
    identity_author: str = "the tunekit team"  # fills {{author}}
    # --- output ------------------------------------------------------------------------------
    output_dir: str = "saves/tunekit"  # where a run writes its adapter or model, checkpoints, log and plots
    overwrite_output_dir: bool = False  # remove output_dir's results and train there; export: write into a non-empty export_dir
    logging_steps: int = 10  # log the loss and metrics every n steps (the first and last steps always); eval_steps' default
    save_steps: int = 500  # save a checkpoint-N every n steps (save_strategy: steps)
    save_total_limit: int | None = None  # keep at most n checkpoints (the oldest removed); none: keep all
    plot_loss: bool = False  # after training, draw each of the stage's metrics (loss, rewards, ...) as a PNG in output_dir
    report_to: str = "none"  # none | all | a comma list of loggers (wandb, tensorboard, ...), each installed
    # --- train -------------------------------------------------------------------------------
    per_device_train_batch_size: int = 1  # rows per device per forward pass (grpo, rloo: answers; kto trains at least 2)
    per_device_eval_batch_size: int = 8  # transformers' default: evaluation and prediction batch their rows
    gradient_accumulation_steps: int = 1  # batches per optimizer step: the effective batch is batch size x this x devices
    learning_rate: float = 5.0e-5  # the optimizer's peak learning rate (after warmup, before the schedule's decay)
    num_train_epochs: float = 3.0  # passes over the training rows (a fraction allowed); max_steps, when set, wins
    max_steps: int = -1  # optimizer steps to train; -1: as many as num_train_epochs make
    lr_scheduler_type: str = "linear"  # transformers' schedules: linear, cosine, constant, constant_with_warmup, polynomial, ...
    warmup_ratio: float = 0.0  # share of the steps over which the rate rises from 0 (below 1); warmup_steps, when set, wins
    warmup_steps: int = 0  # steps over which the rate rises from 0; 0: warmup_ratio decides
    weight_decay: float = 0.0  # the optimizer's weight decay
    max_grad_norm: float = 1.0  # gradients are clipped to this norm; 0: no clipping
    optim: str = "adamw_torch"  # the optimizer, by transformers' name (adamw_torch, adafactor, sgd, ...); ppo: always AdamW
    bf16: bool = False  # bf16 mixed precision on a GPU that has it (else fp32, with a warning); LoRA: the base loads in bf16
    fp16: bool = False  # fp16 mixed precision on a CUDA GPU (else fp32, with a warning); LoRA: the base loads in fp16
    pure_bf16: bool = False  # the weights themselves in bf16, without mixed precision (LLaMA-Factory's key; CUDA)
    seed: int = 42  # the random seed: initialisation, shuffling, the val_size split, sampling
    gradient_checkpointing: bool | None = None  # None: on only when the activations would not fit (see the log)
    resume_from_checkpoint: Union[bool, str, None] = None  # true = the last checkpoint in output_dir
    eval_strategy: str = "no"  # no | steps | epoch: evaluate the held-out rows during training (steps: every eval_steps)
    eval_steps: int | None = None  # eval_strategy steps: evaluate every n steps; default logging_steps
    save_strategy: str = "steps"  # no | steps | epoch | best: when checkpoints are saved (steps: every save_steps)
    ddp_timeout: int = 1800  # seconds a multi-process run (torchrun, accelerate) waits for its processes; unused in one process
    deepspeed: str | None = None  # a DeepSpeed JSON config file (e.g. examples/deepspeed/ds_z2_config.json); ignored without CUDA
    dataloader_num_workers: int = 0  # processes that load the batches (0: the main process)
    # --- generation (samples, ppo rollouts, chat) --------------------------------------------
    max_new_tokens: int = 512  # longest generated answer (ppo, grpo, rloo, distill, do_predict); below cutoff_len when sampling
    temperature: float = 0.95  # sampling temperature (ppo, grpo, rloo, distill, do_predict); distill's loss uses it too
    top_p: float = 0.7  # nucleus sampling: only the likeliest tokens up to this probability mass (0 to 1)
    top_k: int = 50  # sample among the k likeliest tokens only (0: no limit)
    do_sample: bool = True  # do_predict: sample with temperature / top_p / top_k; false: greedy decoding
    repetition_penalty: float = 1.0  # above 1: tokens already in the text less likely (grpo, rloo, distill, do_predict; not ppo)
    skip_special_tokens: bool = True  # do_predict: decode the answers without special tokens
    # --- export (merge a LoRA adapter into its base) -----------------------------------------
    export_dir: str | None = None  # tunekit export: the folder the merged model (and export_gguf's file) is written to
    export_size: int = 5  # shard size in GB
    export_device: str = "cpu"  # not used (LLaMA-Factory's cpu | auto): the merge runs where the backend loads the model
    export_legacy_format: bool = False  # tunekit export: .bin weight files instead of safetensors
    export_gguf: str | None = None  # f16 | q8_0: also write export_dir/model-<type>.gguf and an Ollama Modelfile
    # TrainingArguments keys without a field above, passed to the trainer as they are.
    training_args: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | os.PathLike | None = None, only_changed: bool = True, keep: tuple = ()) -> str:
        """The config as LLaMA-Factory YAML (by default only the keys that differ from the defaults, and ``keep``)."""
        defaults = Config()
        data = {k: v for k, v in self.to_dict().items()
                if k != "training_args" and (not only_changed or k in keep or v != getattr(defaults, k))}
        data.update(self.training_args)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @property
    def datasets(self) -> list[str]:
        return comma_list(self.dataset)

    @property
    def eval_datasets(self) -> list[str]:
        return comma_list(self.eval_dataset)


KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.name != "training_args")
_TYPES = typing.get_type_hints(Config)
# LLaMA-Factory keys that tunekit accepts and does not use: ignored with one warning naming the reason.
_IGNORED = {
    "use_fast_tokenizer": "tunekit always uses the fast tokenizer",
    "streaming": "data sets are loaded in memory",
    "buffer_size": "data sets are loaded in memory",
    "use_unsloth_gc": "backend: unsloth always uses Unsloth's gradient checkpointing",
    "enable_liger_kernel": "not used on this backend",
    "upcast_layernorm": "not needed in fp32",
    "upcast_lmhead_output": "not needed in fp32",
    "mix_strategy": "data sets are concatenated",
    "interleave_probs": "data sets are concatenated",
    "print_param_status": "the trainable-parameter count is always printed",
    "preprocessing_batch_size": "data is tokenized in memory",
    "low_cpu_mem_usage": "set by transformers",
    "use_cache": "set by transformers",
    "infer_backend": "tunekit generates with transformers",
    "infer_dtype": "tunekit generates in the training dtype",
    "default_system": "the chat template's own system prompt is used",
    "neat_packing": "sft packing always keeps rows apart (position ids restart, attention stays within a row)",
    "ignore_pad_token_for_loss": "padding never carries loss",
    "eval_on_each_dataset": "one eval split",
    "compute_accuracy": "sft logs mean_token_accuracy",
    "include_effective_tokens_per_second": "not reported",
    "data_shared_file_system": "one machine",
    "hf_hub_token": "use the HF_TOKEN environment variable",
}
# Keys of transformers' TrainingArguments that tunekit has no field for (save_only_model,
# adam_beta2, ...) go through to the trainer unchanged, as in LLaMA-Factory.


def _training_argument_names() -> set[str]:
    from transformers import TrainingArguments  # imported only when such a key is met

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def comma_list(value: str | None) -> list[str]:
    """The items of a comma-separated key (``dataset``, ``lora_target``, ...), blanks dropped."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_config(source: str | os.PathLike | dict | Config | None = None, *args: str, **overrides: Any) -> Config:
    """A ``Config`` whose keys are checked one by one and in the combinations that hold for every stage.

    ``source`` is a YAML path, a dict, a ``Config`` or None (defaults). ``args`` are CLI-style
    ``"key=value"`` strings (values parsed as YAML), ``overrides`` are keyword values; both win
    over the file. Raises ``ConfigError`` with a one-line message on any bad key or value.
    ``tunekit.load_config`` (``run.py``) is this plus the stage's own rules, and it imports Unsloth
    first where Unsloth is the backend: that is the one to call.
    """
    return validate(read_config(source, *args, **overrides))


def read_config(source: str | os.PathLike | dict | Config | None = None, *args: str, **overrides: Any) -> dict:
    """The raw keys ``load_config`` validates: the file (or dict), then ``args`` and ``overrides``, with
    LLaMA-Factory's switches put in tunekit's terms (``use_unsloth``, ``disable_gradient_checkpointing``).
    It imports nothing, so the CLI can choose the backend before the checks import transformers."""
    if isinstance(source, Config):
        raw = source.to_dict()
    elif isinstance(source, dict):
        raw = dict(source)
    elif source is None:
        raw = {}
    else:
        raw = _read_yaml(Path(source))
    for arg in args:
        key, sep, value = str(arg).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {arg!r} is not key=value (e.g. max_steps=10)")
        raw[key.strip()] = _parse_override(value)
    raw.update(overrides)
    if "disable_gradient_checkpointing" in raw:  # LLaMA-Factory's spelling: true = gradient_checkpointing: false
        disable = _coerce("disable_gradient_checkpointing", raw.pop("disable_gradient_checkpointing"), bool)
        if disable and "gradient_checkpointing" not in raw:
            raw["gradient_checkpointing"] = False
    if "do_train" not in raw and any(_convert(raw.get(k), bool) is True for k in ("do_eval", "do_predict")):
        raw["do_train"] = False  # LLaMA-Factory's default: a config that evaluates or predicts trains only if it says so
    if isinstance(raw.get("scale_rewards"), bool):  # trl's spelling: true = group, false = none
        raw["scale_rewards"] = "group" if raw["scale_rewards"] else "none"
    if "use_unsloth" in raw:  # LLaMA-Factory's switch: true = backend: unsloth, false = backend: hf
        use = _coerce("use_unsloth", raw.pop("use_unsloth"), bool)
        raw.setdefault("backend", "unsloth" if use else "hf")
    return raw


def _read_yaml(path: Path) -> dict:
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; give the path of a .yaml file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {err.start}); save it as UTF-8 YAML") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        raise ConfigError(f"config file {str(path)!r} is empty; write YAML keys such as 'stage: sft'")
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} holds a YAML {type(data).__name__}, not a mapping of keys; "
            "write 'key: value' lines"
        )
    return data


def _parse_override(value: str) -> Any:
    try:
        return yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return value


def validate(raw: dict) -> Config:
    """``read_config``'s raw keys as a checked ``Config`` (unknown keys, types, ranges, stage-free combinations)."""
    values: dict[str, Any] = {}
    passthrough: dict[str, Any] = dict(raw.pop("training_args", None) or {})
    ignored = []  # warned about only once the config is valid: an error stays the one line printed
    for key, value in raw.items():
        if key in _IGNORED:
            ignored.append(f"{key} is not used by tunekit ({_IGNORED[key]}); ignored")
            continue
        if key not in KEYS:
            if key in _training_argument_names():
                passthrough[key] = value
                continue
            close = difflib.get_close_matches(str(key), KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else "; every key is in docs/config.md (the configuration reference)"
            raise ConfigError(f"unknown config key '{key}'{hint}")
        values[key] = _coerce(key, value, _TYPES[key])
    cfg = Config(**values, training_args=passthrough)
    _check(cfg)
    for message in ignored:
        warn(message, stacklevel=4)
    return cfg


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert ``value`` to the annotated type of ``key`` (YAML strings such as '1e-4' included)."""
    allowed = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key} must be set (got null); remove the line to use the default")
    if key in ("dataset", "eval_dataset", "lora_target", "additional_target", "report_to",
               "freeze_trainable_modules", "freeze_extra_modules", "adapter_name_or_path", "reward_funcs",
               "reward_weights") and isinstance(value, list):
        value = ",".join(str(v) for v in value)
    for typ in allowed:
        if typ is type(None):
            continue
        converted = _convert(value, typ)
        if converted is not _FAIL:
            return converted
    names = " or ".join(_type_name(t) for t in allowed if t is not type(None))
    raise ConfigError(f"{key}={value!r} is not a valid {names}")


_FAIL = object()
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _convert(value: Any, typ: type) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        return _FAIL
    if typ is int:
        if isinstance(value, bool):
            return _FAIL
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            return _FAIL
        return int(number) if number.is_integer() else _FAIL
    if typ is float:
        if isinstance(value, bool):
            return _FAIL
        try:
            return float(value)
        except (TypeError, ValueError):
            return _FAIL
    if typ is str:
        if isinstance(value, (dict, list, bool)):
            return _FAIL
        return str(value)
    return _FAIL


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _type_name(typ: type) -> str:
    return {bool: "boolean (true/false)", int: "integer", float: "number", str: "string"}.get(typ, str(typ))


def _check(cfg: Config) -> None:
    """Choices, ranges and combinations of keys."""
    for key, choices in _CHOICES.items():
        value = getattr(cfg, key)
        if value not in choices:
            raise not_one_of(key, value, choices)
    for key in _POSITIVE:
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise ConfigError(f"{key}={value!r} must be at least 1")
    for key in _NON_NEGATIVE:
        value = getattr(cfg, key)
        if value is not None and value < 0:
            raise ConfigError(f"{key}={value!r} must not be negative")
    for key in ("lmbda", "top_entropy_quantile"):
        if getattr(cfg, key) > 1:
            raise ConfigError(f"{key}={getattr(cfg, key)!r} is a share: give a number from 0 to 1")
    for key in ("model_name_or_path", "output_dir"):
        if not str(getattr(cfg, key)).strip():
            raise ConfigError(f"{key} is empty; remove the line to use the default ({getattr(Config, key)})")
    if cfg.cutoff_len < 2:
        raise ConfigError(f"cutoff_len={cfg.cutoff_len} leaves no token to predict; use at least 2 (the default is 2048)")
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed={cfg.seed} must be between 0 and 2**32 - 1")
    if cfg.lora_dropout >= 1:
        raise ConfigError(f"lora_dropout={cfg.lora_dropout} must be below 1 (a probability; 0.05 is usual)")
    if cfg.max_steps == 0 or cfg.max_steps < -1:
        raise ConfigError(f"max_steps={cfg.max_steps} must be at least 1 (or -1 to train num_train_epochs)")
    if cfg.max_steps == -1 and cfg.num_train_epochs <= 0:
        raise ConfigError(f"num_train_epochs={cfg.num_train_epochs} must be above 0 (or set max_steps)")
    if cfg.top_p > 1:
        raise ConfigError(f"top_p={cfg.top_p} must be between 0 and 1")
    if cfg.warmup_ratio >= 1:
        raise ConfigError(f"warmup_ratio={cfg.warmup_ratio} must be below 1")
    if cfg.do_train and not cfg.datasets:
        raise ConfigError("dataset is not set; name one or more data sets, e.g. 'dataset: identity,alpaca_en_demo'")
    if (cfg.do_eval or cfg.do_predict) and not (cfg.eval_dataset or cfg.val_size):
        key = "do_predict" if cfg.do_predict else "do_eval"
        raise ConfigError(f"{key}: true needs held-out rows; set eval_dataset (e.g. eval_dataset: identity) "
                          "or val_size (e.g. val_size: 0.1)")
    if not cfg.do_train and cfg.val_size and not cfg.eval_dataset and not cfg.datasets:
        raise ConfigError(f"val_size={cfg.val_size} holds out rows of dataset, and dataset is not set; "
                          "name the data set, or give eval_dataset")
    if cfg.bf16 and cfg.fp16:
        raise ConfigError("bf16 and fp16 are both true; choose one")
    if cfg.finetuning_type != "lora" and cfg.adapter_name_or_path:
        raise ConfigError(
            f"adapter_name_or_path is set but finetuning_type={cfg.finetuning_type!r}; adapters need finetuning_type: lora"
        )
    if cfg.deepspeed and not Path(cfg.deepspeed).is_file():
        raise ConfigError(f"deepspeed={cfg.deepspeed!r} is not a file; give a DeepSpeed JSON config such as "
                          "examples/deepspeed/ds_z2_config.json")
    if cfg.export_gguf is not None and cfg.export_gguf not in GGUF_TYPES:
        raise not_one_of("export_gguf", cfg.export_gguf, GGUF_TYPES)
    if cfg.quantization_bit is not None and cfg.quantization_bit not in (4, 8):
        raise ConfigError(f"quantization_bit={cfg.quantization_bit} must be 4 or 8")
    if cfg.quantization_bit is not None and cfg.finetuning_type != "lora":
        raise ConfigError(f"quantization_bit={cfg.quantization_bit} trains a LoRA adapter on a quantized base (QLoRA), "
                          f"and finetuning_type={cfg.finetuning_type!r}; set finetuning_type: lora or remove "
                          "quantization_bit")
    if cfg.optim != Config.optim:
        from transformers.training_args import OptimizerNames  # imported only for a non-default optimizer

        names = [o.value for o in OptimizerNames]
        if cfg.optim not in names:
            close = [n for n in names if n.startswith(cfg.optim)] or difflib.get_close_matches(cfg.optim, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"e.g. {Config.optim}, adafactor, sgd"
            raise ConfigError(f"optim={cfg.optim!r} is not an optimizer transformers knows; {hint}")
    _check_report_to(cfg.report_to)
    _check_extras(cfg)
    check_template_name(cfg.template)
    if cfg.lora_alpha is None:
        cfg.lora_alpha = cfg.lora_rank * 2


def not_one_of(key: str, value: Any, choices) -> ConfigError:
    """The error for a value outside its choices, with a did-you-mean."""
    return ConfigError(f"{key}={value!r} is not one of: {', '.join(choices)}{_choice_hint(key, value, tuple(choices))}")


def _choice_hint(key: str, value: Any, choices: tuple) -> str:
    if key == "finetuning_type" and str(value).lower() == "qlora":
        return " (QLoRA is finetuning_type: lora with quantization_bit: 4)"
    if str(value).lower() in choices:
        return f" (did you mean '{str(value).lower()}'?)"
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_report_to(value: str) -> None:
    """Every name in ``report_to`` is a logger transformers knows, and its package is installed."""
    names = [n for n in comma_list(value) if n not in ("none", "all")]
    if not names:
        return
    from transformers.integrations.integration_utils import (INTEGRATION_TO_CALLBACK,
                                                             get_available_reporting_integrations)

    installed = get_available_reporting_integrations()
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            close = difflib.get_close_matches(name, list(INTEGRATION_TO_CALLBACK), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"use none or one of: {', '.join(INTEGRATION_TO_CALLBACK)}"
            raise ConfigError(f"report_to={value!r}: {name!r} is not a logger transformers knows; {hint}")
        if name not in installed:
            raise ConfigError(f"report_to={value!r}: the {name} package is not installed; pip install {name}, "
                              "or set report_to: none")


def optimizer_keys(cfg: Config) -> list[str]:
    """The keys set in ``cfg`` that each choose the Trainer's optimizer (Muon, GaLore, LoRA+)."""
    return [k for k in ("use_muon", "use_galore") if getattr(cfg, k)] + (
        ["loraplus_lr_ratio"] if cfg.loraplus_lr_ratio is not None else [])


def _check_extras(cfg: Config) -> None:
    """The LoRA variants and extras: what they need, and which go together."""
    lora_only = [k for k in ("use_dora", "use_rslora", "pissa_init", "pissa_convert") if getattr(cfg, k)]
    if cfg.loraplus_lr_ratio is not None:
        lora_only.append("loraplus_lr_ratio")
    if lora_only and cfg.finetuning_type != "lora":
        raise ConfigError(f"{lora_only[0]} is a LoRA variant and finetuning_type={cfg.finetuning_type!r}; "
                          "set finetuning_type: lora")
    if cfg.pissa_convert and not cfg.pissa_init:
        raise ConfigError("pissa_convert: true converts a PiSSA adapter; set pissa_init: true as well")
    if cfg.loraplus_lr_ratio is not None and cfg.loraplus_lr_ratio <= 0:
        raise ConfigError(f"loraplus_lr_ratio={cfg.loraplus_lr_ratio} must be above 0 (LoRA+ papers use 16)")
    if cfg.use_llama_pro and cfg.finetuning_type not in ("freeze", "lora"):
        raise ConfigError("use_llama_pro: true trains the expanded blocks; set finetuning_type: freeze (or lora)")
    optimizers = optimizer_keys(cfg)
    if len(optimizers) > 1:
        raise ConfigError(f"{' and '.join(optimizers)} each choose the optimizer; keep one")
    if cfg.use_galore:
        import importlib.util

        if importlib.util.find_spec("galore_torch") is None:
            raise ConfigError("use_galore: true needs the galore-torch package: pip install \"tunekit[galore]\" "
                              "(galore-torch and bitsandbytes), or remove use_galore")

