"""Will it fit, and how long will it take: a run's peak memory and time, predicted before it starts.

The prediction needs the model's ``config.json`` (no weights: the model is built on PyTorch's ``meta`` device, so
the parameter counts and the trainable ones, LoRA adapters included, are exact), the config, and the length of the
rows (the longest of the first rows, capped at ``cutoff_len``). Memory is the sum of its parts:

- ``runtime``: Python, torch and the libraries (CPU only; on a GPU ``max_memory_allocated`` does not count them);
- ``weights``: every parameter at the precision it is held in (4 bits for a QLoRA base, in blocks with a scale);
- ``gradients`` and ``optimizer``: the trainable parameters' gradients and the optimizer's state (AdamW two
  moments, 8-bit AdamW a quarter of that, Muon one momentum for the hidden matrices, GaLore's low-rank moments);
- ``activations``: what the forward pass keeps for the backward one, per token per layer (all of a layer's
  intermediate states; with gradient checkpointing only each layer's input, plus one layer recomputed);
- ``logits``: the LM head's scores over the vocabulary for every token (and their log-softmax and gradient);
- ``reference``: a frozen copy of the weights where the reference model is not the LoRA model's base (full
  fine-tuning with a reference: dpo, kto, grpo with ``pref_beta``; none where dpo's and kto's reference log-probs
  are computed before training, ``precompute_ref_log_probs``), and ppo's reward model;
- ``kv_cache``: the keys and values of sampling (ppo, grpo: ``num_generations`` answers of ``max_new_tokens``).

Time: one step's floating-point work (forward 2N per token, backward 4N in full or 2N with a frozen base, one more
forward with checkpointing, attention's L^2 terms, sampling's 2N per new token) at this machine's measured
matrix-multiply rate (``machine_rate``: a second of probing, cached), plus a fixed cost per step (Python, the
optimizer, the collator: measured on the calibrating machine and scaled by this one's matrix-multiply rate
against that machine's). On the GPUs of
``GPUS``, from their published bf16 throughput and memory bandwidth. ``CALIBRATION`` holds the factors measured by
``bench/plan_accuracy.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .distributed import world_size

GIB = 2**30


@dataclass(frozen=True)
class GPU:
    name: str
    memory: int  # bytes
    bf16_flops: float  # dense, published
    bandwidth: float  # bytes/s, published


GPUS = (  # published figures (dense bf16 / fp16 tensor throughput; memory bandwidth)
    GPU("T4 16 GB", 16 * GIB, 65e12, 320e9),
    GPU("L4 24 GB", 24 * GIB, 121e12, 300e9),
    GPU("A10G 24 GB", 24 * GIB, 70e12, 600e9),
    GPU("A100 40 GB", 40 * GIB, 312e12, 1555e9),
    GPU("A100 80 GB", 80 * GIB, 312e12, 2039e9),
    GPU("H100 80 GB", 80 * GIB, 989e12, 3350e9),
)

# Factors measured by bench/plan_accuracy.py (make bench-plan) on 2 CPU cores; see docs/plan.md.
CALIBRATION = {
    "runtime_bytes": 0.62 * GIB,  # the process before the model: Python, torch, transformers, trl, peft, datasets
    "allocator": 1.15,  # CPU memory the allocator holds beyond what the tensors need (fragmentation, workspaces)
    "layer_hidden": 16,  # activations kept per token per layer, in units of hidden_size (fp32 values) ...
    "layer_inner": 4,  # ... and of intermediate_size (the MLP's gate, up, their product, the activation)
    "layer_checkpointed": 10,  # kept per token per layer with checkpointing, in units of hidden_size (the layer's
    # input, and what the non-reentrant checkpoint and LoRA's dropout keep besides)
    "logit_copies": 3,  # logits, their log-softmax and its gradient, over the vocabulary
    # The CPU time model's factors below were fitted together (least squares on predicted / measured - 1, none
    # negative: `python bench/plan_accuracy.py --fit ROWS.json ...`) to the 204 rows of three runs of make bench-plan
    # measured 2026-12-07 on 2 cores of an AMD EPYC with AVX-512, whose matrix-multiply probe read 152-185 GFLOP/s
    # (the command, and how well two runs' fit predicts the third, are in docs/plan.md)
    "efficiency_cpu": 0.597,  # the share of the matrix-multiply rate a training step reaches on a CPU
    "matmul_rate_cpu": 172e9,  # machine_rate() on the calibrating machine: the fixed costs below are its seconds, and
    # scale by this rate to another CPU (between the two CPUs measured, a tiny step's fixed cost changed about as the
    # matrix-multiply rate did; a probe of small operations launched from Python did not, see docs/plan.md)
    "step_overhead_cpu": 0.0104,  # seconds per step besides the arithmetic (Python, the optimizer, the collator) ...
    "forward_overhead_cpu": 0.0047,  # ... and per forward pass without gradients besides the trained one (the
    # reference's, kto's KL rows: ``forwards_without_gradients``) ...
    "recompute_cpu": 0.5,  # the share of a forward pass's FLOPs that checkpointing's recomputation costs on a CPU
    # (measured on SmolLM2: about half; the first forward also writes every activation it keeps)
    "checkpoint_layer_overhead_cpu": 0.00285,  # ... and per layer with gradient checkpointing (its hooks, the saved
    # input and the recomputation's launches: on the tiny model about as much as the step's arithmetic)
    "token_overhead_cpu": 0.00282,  # seconds per sampled token besides reading the weights (generate's loop) ...
    "token_layer_overhead_cpu": 0.0,  # ... and per layer (each layer's kernels are launched once per token; fitted
    # to nothing beside the per-token part: the two models measured tell them apart by their layers alone)
    "sampling_bandwidth_cpu": 0.129,  # the share of the measured memory bandwidth that a sampled token's reads of
    # every weight reach on a CPU (generate's many small kernels, on two threads)
    "efficiency_gpu": 0.35,  # model FLOPs utilisation of a plain training step on a GPU
    "step_overhead_gpu": 0.03,
    "unsloth_speed": 2.0,  # Unsloth's claim: about twice the plain path's speed ...
    "unsloth_activations": 0.3,  # ... and activations offloaded with its checkpointing (a share stays)
}


@dataclass
class Estimate:
    """A run's predicted peak memory (by part, bytes) and time, on this machine and on common GPUs."""

    parts: dict[str, int]  # runtime, weights, gradients, optimizer, activations, logits, reference, kv_cache
    seconds_per_step: float  # on this machine
    steps: int
    tokens_per_step: int
    length: int  # the sequence length the memory is computed for (the longest rows, up to cutoff_len)
    gradient_checkpointing: bool
    device: str  # "cpu" or "cuda"
    free: int  # memory free for the run on this machine (bytes)
    parameters: int
    trainable: int
    without_checkpointing: int = 0  # the activations' bytes with gradient checkpointing off (what the choice weighs)
    gpus: list[dict] = field(default_factory=list)  # name, peak_memory_bytes, fits, seconds_per_step(_unsloth)
    fixes: list[dict] = field(default_factory=list)  # change, peak_memory_bytes (cheapest first)
    notes: list[str] = field(default_factory=list)  # what the prediction assumed where it could not read something

    @property
    def peak(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.peak <= self.free

    @property
    def total_seconds(self) -> float:
        return self.seconds_per_step * self.steps

    def line(self) -> str:
        """One line before the first step: ``about 3.4 GiB peak, 7 s/step here, 24 min for 200 steps``."""
        text = f"about {self.peak / GIB:.1f} GiB peak, {_seconds(self.seconds_per_step)}/step here"
        if self.steps:
            text += f", {_duration(self.total_seconds)} for {self.steps} steps"
        if not self.fits:
            fitting = [f for f in self.fixes if f["fits"]]
            fix = (f"; {fitting[0]['change']} needs {fitting[0]['peak_memory_bytes'] / GIB:.1f} GiB" if fitting
                   else "; no one change makes it fit here (tunekit plan lists them, and the GPUs)")
            text += f" (does not fit: {self.free / GIB:.1f} GiB free{fix})"
        return text

    def to_dict(self) -> dict:
        return {"peak_memory_bytes": self.peak, "seconds_per_step": self.seconds_per_step,
                "total_seconds": self.total_seconds, "steps": self.steps, "fits": self.fits, "free_bytes": self.free,
                "device": self.device, "parts": dict(self.parts), "tokens_per_step": self.tokens_per_step,
                "length": self.length, "gradient_checkpointing": self.gradient_checkpointing,
                "parameters": self.parameters, "trainable": self.trainable, "gpus": self.gpus, "fixes": self.fixes,
                "notes": self.notes}

    def table(self) -> str:
        """The parts, the GPUs and the fixes, as a few lines of text (``tunekit plan``)."""
        lines = [f"peak memory: about {self.peak / GIB:.2f} GiB ({self.device}; {self.free / GIB:.1f} GiB free: "
                 f"{'fits' if self.fits else 'does not fit'})"]
        lines += [f"  {name:<12} {value / GIB:8.3f} GiB" for name, value in self.parts.items() if value]
        lines.append(f"parameters: {self.parameters:,}, trainable {self.trainable:,}; {self.tokens_per_step:,} tokens "
                     f"per step (rows of {self.length} tokens); gradient checkpointing "
                     f"{'on' if self.gradient_checkpointing else 'off'}")
        lines.append(f"time here: {_seconds(self.seconds_per_step)}/step"
                     + (f", {_duration(self.total_seconds)} for {self.steps} steps" if self.steps else ""))
        for gpu in self.gpus:
            speed = f"{_seconds(gpu['seconds_per_step'])}/step"
            if gpu.get("seconds_per_step_unsloth"):
                speed += f" ({_seconds(gpu['seconds_per_step_unsloth'])} with Unsloth)"
            lines.append(f"  {gpu['name']:<11} {gpu['peak_memory_bytes'] / GIB:6.1f} GiB "
                         f"{'fits' if gpu['fits'] else 'does not fit':<13} {speed}")
        for fix in self.fixes:
            lines.append(f"to fit: {fix['change']} -> {fix['peak_memory_bytes'] / GIB:.1f} GiB")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------
# the model's shape, without its weights
# ---------------------------------------------------------------------------------------------


@dataclass
class Shape:
    """What the plan reads of a model: its config's sizes and its parameters, grouped by what they cost."""

    sizes: dict  # hidden, inner, layers, heads, kv_heads, vocab
    groups: list  # [dims, trainable, embedding_or_head, how many such parameters]

    def parameters(self, trainable: bool | None = None, embedding_or_head: bool | None = None):
        """(dims, count) of the groups that match."""
        return [(tuple(dims), count) for dims, train, special, count in self.groups
                if (trainable is None or train == trainable) and (embedding_or_head is None or special == embedding_or_head)]


_SHAPED: dict = {}  # shapes by what shapes them, in this process (a plan and its fixes build few)


def model_shape(cfg: Config, head: str = "causal_lm") -> Shape:
    """``cfg``'s model with what ``finetuning_type`` trains, as a ``Shape``: built on the meta device once, then read
    from ``TUNEKIT_HOME`` (so that a second plan of the same model imports no torch)."""
    key = _shape_key(cfg, head)
    if key not in _SHAPED:
        cached = _cache("shapes", key)
        if cached is None:
            model, config = meta_model(cfg, head)
            groups: dict = {}
            for name, p in model.named_parameters():
                group = (tuple(p.shape), p.requires_grad, "embed" in name or "lm_head" in name)
                groups[group] = groups.get(group, 0) + 1
            cached = {"sizes": _sizes(config), "groups": [[list(d), t, s, n] for (d, t, s), n in groups.items()]}
            _cache("shapes", key, cached)
        _SHAPED[key] = Shape(**cached)
    return _SHAPED[key]


def _shape_key(cfg: Config, head: str) -> str:
    """What a model's shape depends on: the keys that shape it, its ``config.json`` where it is a folder (a hub id or
    an alias names one config), the adapter it continues and the versions of the libraries that build it."""
    from importlib.metadata import version

    adapter = (cfg.adapter_name_or_path or "").split(",")[-1].strip()
    files = [Path(cfg.model_name_or_path).expanduser() / "config.json"]
    files += [Path(adapter) / "adapter_config.json"] if adapter else []
    return json.dumps([cfg.model_name_or_path, head, cfg.finetuning_type, cfg.lora_rank, cfg.lora_target,
                       cfg.additional_target, cfg.use_dora, cfg.adapter_name_or_path, cfg.freeze_trainable_layers,
                       cfg.freeze_trainable_modules, cfg.freeze_extra_modules, cfg.use_llama_pro,
                       [f.read_text() for f in files if f.is_file()],
                       version("transformers"), version("peft"), _CACHE_VERSION], default=str)


def meta_model(cfg: Config, head: str = "causal_lm"):
    """(the model with what ``finetuning_type`` trains, built on the meta device: every shape, no memory; its config)."""
    import torch
    import transformers

    from .models import resolve_model
    from .models.adapters import attach_adapters
    from .models.resolve import cache_only

    from .errors import ConfigError, error_reason

    name = cfg.model_name_or_path
    try:  # a folder with a config.json is enough (no weights, no tokenizer): the plan of a model not downloaded
        path = name if (Path(name).expanduser() / "config.json").is_file() else resolve_model(name)
        config = transformers.AutoConfig.from_pretrained(path, **cache_only(path))  # offline: no minutes of retries
    except ConfigError:
        raise
    except (OSError, ValueError) as err:
        raise ConfigError(f"model_name_or_path={cfg.model_name_or_path!r}: its config.json cannot be read here "
                          f"({error_reason(err)}); the plan needs only that file: download it once (hf download "
                          f"{cfg.model_name_or_path} config.json) or give a local folder that holds it") from None
    loader = (transformers.AutoModelForSequenceClassification if head == "score"
              else transformers.AutoModelForCausalLM)
    if head == "score":
        config.num_labels = 1
    with torch.device("meta"):
        model = loader.from_config(config)
    model.requires_grad_(False)
    adapters = [a for a in (cfg.adapter_name_or_path or "").split(",") if a.strip()]
    rank = cfg.lora_rank
    if adapters and (Path(adapters[-1]) / "adapter_config.json").is_file():  # continuing an adapter: its rank
        rank = json.loads((Path(adapters[-1]) / "adapter_config.json").read_text()).get("r", rank)
    shaped = dataclasses.replace(cfg, adapter_name_or_path=None, pissa_init=False, lora_rank=rank)
    return attach_adapters(model, shaped), config


def _bytes_of(shape: Shape, cfg: Config, cuda: bool) -> tuple[int, int, int]:
    """(parameters, trainable parameters, bytes the weights take)."""
    total = trainable = weight_bytes = 0
    half = cuda and (cfg.bf16 or cfg.fp16 or cfg.pure_bf16 or cfg.quantization_bit is not None)
    for dims, train, special, count in shape.groups:
        n = math.prod(dims) * count
        total += n
        if train:
            trainable += n
            weight_bytes += 4 * n if not cfg.pure_bf16 else 2 * n
        elif cfg.quantization_bit and len(dims) == 2 and not special:
            weight_bytes += n * cfg.quantization_bit / 8 * 1.07  # blocks of 64 with a scale each
        else:
            weight_bytes += (2 if half else 4) * n
    return total, trainable, int(weight_bytes)


def _optimizer_bytes(shape: Shape, cfg: Config) -> int:
    """The optimizer's state for the trainable parameters."""
    params = shape.parameters(trainable=True)
    if cfg.use_galore:  # moments of the projected (rank x n) gradients, plus the projections
        total = 0
        for dims, count in params:
            if len(dims) == 2:
                total += count * 4 * cfg.galore_rank * (2 * max(dims) + min(dims))
            else:
                total += count * 8 * math.prod(dims)
        return total
    if cfg.use_muon:  # one momentum for the hidden matrices, AdamW's two moments for the rest
        hidden = sum(math.prod(d) * n for d, n in shape.parameters(trainable=True, embedding_or_head=False)
                     if len(d) == 2)
        return 4 * hidden + 8 * (sum(math.prod(d) * n for d, n in params) - hidden)
    optim = cfg.optim.lower()
    per = 2 if "8bit" in optim else 0 if optim == "sgd" else 1 if "adafactor" in optim else 8
    return per * sum(math.prod(d) * n for d, n in params)


# ---------------------------------------------------------------------------------------------
# the estimate
# ---------------------------------------------------------------------------------------------


def estimate(cfg: Config, stage, *, length: int | None = None, rows: int | None = None, cuda: bool = False,
             free: int | None = None, checkpointing: bool | None = None, rate: float | None = None, gpus: bool = True,
             fixes: bool = True) -> Estimate:
    """Predict ``cfg``'s run (``stage``: its ``Stage``). ``length``: the rows' tokens (default ``cutoff_len``);
    ``rows``: the training rows (what ``num_train_epochs`` counts steps of, when ``max_steps`` is not set);
    ``free``: memory free for it (default: measured); ``checkpointing``: as decided (default: as the config says,
    else on only when the activations would take more than half of ``free``); ``rate``: this machine's
    matrix-multiply FLOP/s (default: measured once, cached)."""
    if stage.reference and not stage.samples and (rows or cfg.max_steps <= 0):
        from .stages.preference import precompute_reference  # the run's own decision: cached, no forward per step

        cfg = dataclasses.replace(cfg, precompute_ref_log_probs=precompute_reference(cfg, rows or 1, quiet=True))
    out = _estimate(cfg, stage, model_shape(cfg, stage.head), length or cfg.cutoff_len, cuda,
                    free if free is not None else free_memory(cuda), checkpointing, rate, gpus, fixes)
    if cfg.max_steps <= 0 and rows:
        per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world_size()
        out.steps = math.ceil(cfg.num_train_epochs * math.ceil(rows / per_step))
    return out


def _estimate(cfg, stage, shaped: Shape, length, cuda, free, checkpointing, rate, gpus, fixes,
              gpu: GPU | None = None) -> Estimate:
    shape = shaped.sizes
    total, trainable, weight_bytes = _bytes_of(shaped, cfg, cuda)
    generating = stage.samples  # ppo, grpo, rloo, distill sample their answers
    batch = cfg.per_device_train_batch_size * (1 if generating else stage.sequences_per_row)
    width = 2 if cuda and (cfg.bf16 or cfg.fp16 or cfg.pure_bf16) else 4  # bytes per activation value
    full_acts = activation_bytes(shape, batch, length, False, width)
    if checkpointing is None:
        checkpointing = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else (
            stage.trainer_loop and full_acts > free / 2)
    checkpointing = bool(checkpointing and stage.trainer_loop)
    acts = activation_bytes(shape, batch, length, checkpointing, width)
    if cfg.backend == "unsloth" and cuda:
        acts = int(acts * CALIBRATION["unsloth_activations"])
    logits = 0 if stage.head == "score" else int(CALIBRATION["logit_copies"] * 4 * batch * length * shape["vocab"])
    if stage.fused_lm_head(cfg) or generating:  # scores for the answer's tokens only (or chunked): about a third
        logits //= 3
    reference = 0
    if cfg.finetuning_type != "lora" and reference_per_step(cfg, stage):  # trl keeps no copy when they are cached
        reference = weight_bytes
    kv = 0
    if generating:
        answers = cfg.per_device_train_batch_size
        head_dim = shape["hidden"] // max(shape["heads"], 1)
        kv = 2 * shape["layers"] * shape["kv_heads"] * head_dim * answers * cfg.cutoff_len * width
        if cfg.reward_model and Path(cfg.reward_model).is_dir():  # an rm output scores the samples (ppo, grpo)
            reference += _reward_model_bytes(cfg)
    notes, teacher = [], 0
    if stage.teacher and cfg.teacher_model:  # distill: the teacher's weights, frozen, at the run's precision
        teacher, note = teacher_parameters(cfg, total)
        notes += [note] if note else []
        reference += teacher * (2 if cuda and (cfg.bf16 or cfg.fp16 or cfg.pure_bf16) else 4)
    allocator = 1.0 if cuda else CALIBRATION["allocator"]
    parts = {"runtime": 0 if cuda else int(CALIBRATION["runtime_bytes"]), "weights": weight_bytes,
             "gradients": int(4 * trainable * allocator), "optimizer": int(_optimizer_bytes(shaped, cfg) * allocator),
             "activations": int(acts * allocator), "logits": int(logits * allocator), "reference": reference,
             "kv_cache": int(kv * allocator)}
    flops = step_flops(cfg, stage, shape, matmul_parameters(shaped, stage.head), trainable, length, checkpointing,
                       teacher, 1.0 if cuda else CALIBRATION["recompute_cpu"])
    buffers, epochs = batches_and_passes(cfg, stage)
    passes = buffers * epochs  # ppo: a step's fixed cost is paid per pass over each sampled batch
    gen_tokens = cfg.max_new_tokens * buffers if generating else 0
    if cuda:
        gpu = gpu or this_gpu()
        seconds = _gpu_seconds(flops, gen_tokens, weight_bytes, gpu.bf16_flops, gpu.bandwidth, passes)
    else:
        rate = rate or machine_rate()
        slower = CALIBRATION["matmul_rate_cpu"] / rate  # the fixed costs, scaled to this CPU
        per_token = slower * (CALIBRATION["token_overhead_cpu"]
                              + CALIBRATION["token_layer_overhead_cpu"] * shape["layers"])
        if gen_tokens:  # each new token reads every weight once (as on a GPU), at what generate reaches here
            per_token += weight_bytes / (machine_rate("bandwidth") * CALIBRATION["sampling_bandwidth_cpu"])
        overhead = slower * (CALIBRATION["step_overhead_cpu"] * passes + (
            CALIBRATION["forward_overhead_cpu"] * forwards_without_gradients(cfg, stage)) + (
            CALIBRATION["checkpoint_layer_overhead_cpu"] * shape["layers"] if checkpointing else 0))
        seconds = overhead + flops / (rate * CALIBRATION["efficiency_cpu"]) + gen_tokens * per_token
    seconds *= cfg.gradient_accumulation_steps
    steps = cfg.max_steps if cfg.max_steps > 0 else 0
    out = Estimate(parts=parts, seconds_per_step=seconds, steps=steps, length=length,
                   tokens_per_step=batch * length * cfg.gradient_accumulation_steps,
                   gradient_checkpointing=checkpointing, device="cuda" if cuda else "cpu", free=free,
                   parameters=total, trainable=trainable, without_checkpointing=full_acts, notes=notes)
    if gpus:
        out.gpus = [_on_gpu(cfg, stage, shaped, length, gpu) for gpu in GPUS]
    if fixes and not out.fits:
        out.fixes = _fixes(cfg, stage, length, cuda, free, rate, out)
    return out


def teacher_parameters(cfg: Config, student: int) -> tuple[int, str | None]:
    """(the parameters of ``teacher_model``, from its config: a tunekit output with an adapter counts its base's;
    a note where it cannot be read yet, e.g. the output of a run still to come: then the student's count)."""
    from .errors import ConfigError

    adapter = Path(cfg.teacher_model) / "adapter_config.json"
    name = json.loads(adapter.read_text()).get("base_model_name_or_path") if adapter.is_file() else cfg.teacher_model
    whole = dataclasses.replace(cfg, model_name_or_path=name, finetuning_type="full", adapter_name_or_path=None)
    try:
        return sum(math.prod(dims) * count for dims, count in model_shape(whole).parameters()), None
    except ConfigError:
        return student, (f"teacher_model={cfg.teacher_model!r} has no config.json to read here (a run still to "
                         "come?): counted as large as the student")


def _reference_free(cfg: Config) -> bool:
    return cfg.pref_loss in ("orpo", "simpo")


def reference_per_step(cfg: Config, stage) -> bool:
    """Whether each step runs the reference model's forward pass: a stage with a reference and a loss that uses it,
    unless dpo's or kto's reference log-probs are computed once before training (``precompute_ref_log_probs``, which
    ``estimate`` decides as the run does)."""
    cached = cfg.precompute_ref_log_probs and not stage.samples
    return stage.reference and (cfg.pref_beta or 0) > 0 and not _reference_free(cfg) and not cached


def forwards_without_gradients(cfg: Config, stage) -> int:
    """The forward passes a trainer's step makes besides the trained one, each with a fixed cost: kto's KL rows
    through the policy, and the reference's over the batch (and over the KL rows) where it runs per step. A
    sampling stage's are in its sampled tokens' cost."""
    if stage.samples:
        return 0
    scored = 1 if stage.scored_per_row else 0
    return scored + (1 + scored if reference_per_step(cfg, stage) else 0)


def _reward_model_bytes(cfg: Config) -> int:
    """The weights of the rm output ``reward_model`` names, as saved."""
    return sum(p.stat().st_size for p in Path(cfg.reward_model).glob("*.safetensors"))


def _sizes(config) -> dict:
    hidden = getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0)
    heads = getattr(config, "num_attention_heads", 1) or 1
    return {"hidden": hidden, "inner": getattr(config, "intermediate_size", 4 * hidden) or 4 * hidden,
            "layers": getattr(config, "num_hidden_layers", 1), "heads": heads,
            "kv_heads": getattr(config, "num_key_value_heads", heads) or heads,
            "vocab": getattr(config, "vocab_size", 0)}


def activation_bytes(shape: dict, rows: int, length: int, checkpointing: bool, width: int = 4) -> int:
    """What one micro-batch's forward pass keeps for the backward one, in bytes (the logits apart). Without
    checkpointing every layer keeps its intermediate states (``layer_hidden`` x hidden + ``layer_inner`` x
    intermediate values per token) and, with attention in eager form, its L x L scores per head; with it, each
    layer keeps its input and one layer at a time is recomputed in full."""
    tokens = rows * length
    per_layer = tokens * (CALIBRATION["layer_hidden"] * shape["hidden"] + CALIBRATION["layer_inner"] * shape["inner"])
    per_layer += rows * shape["heads"] * length * length  # attention probabilities (eager / math attention)
    if checkpointing:
        return int(width * (shape["layers"] * tokens * CALIBRATION["layer_checkpointed"] * shape["hidden"] + per_layer))
    return int(width * shape["layers"] * per_layer)


def step_flops(cfg: Config, stage, shape: dict, matmul: int, trainable: int, length: int, checkpointing: bool,
               teacher: int = 0, recompute: float = 1.0) -> float:
    """One micro-batch's floating-point operations. ``matmul``: the parameters a token is multiplied by
    (``matmul_parameters``). Forward 2N per token, backward 2N (the activations' gradients) plus 2N for the weights'
    where they train, ``recompute`` x a forward again with checkpointing, attention's L^2 terms; a forward alone for
    the rows scored without gradients (kto's KL term), a reference forward (dpo, kto with a reference), the teacher's
    forward (distill) and, for sampling stages, 2N per new token."""
    generating = stage.samples
    rows = cfg.per_device_train_batch_size * (1 if generating else stage.sequences_per_row)
    tokens = rows * length
    scored = 0 if generating else cfg.per_device_train_batch_size * stage.scored_per_row * length
    weights_grad = 2 * matmul if cfg.finetuning_type != "lora" and trainable > matmul / 2 else 2 * trainable
    per_token = 2 * matmul + 2 * matmul + weights_grad + (2 * matmul * recompute if checkpointing else 0)
    attention = 6 * shape["layers"] * shape["hidden"] * length  # QK^T and AV, forward and backward, per token
    buffers, epochs = batches_and_passes(cfg, stage)
    flops = tokens * (per_token + attention) * epochs + scored * (2 * matmul + attention / 3)
    if reference_per_step(cfg, stage):
        flops += (tokens + scored) * matmul  # the reference's forward (without gradients: about half a training one's)
    flops += tokens * 2 * teacher  # distill: the teacher's forward over the same tokens (its parameters, or 0)
    if generating:
        flops += cfg.per_device_train_batch_size * cfg.max_new_tokens * 2 * matmul
    return flops * buffers


def batches_and_passes(cfg: Config, stage) -> tuple[int, int]:
    """Per step, the batches a stage samples or reads, and the forward-backward passes over each: one and one in a
    trainer's loop; tunekit's ppo loop samples ``ppo_buffer_size`` batches and passes over each ``ppo_epochs``
    times (each pass a forward, a backward and its share of an optimizer step)."""
    return (1, 1) if stage.trainer_loop else (cfg.ppo_buffer_size, cfg.ppo_epochs)


def matmul_parameters(shaped: Shape, head: str = "causal_lm") -> int:
    """The parameters each token is multiplied by: every one but the embeddings (a lookup), and the LM head's
    vocabulary x hidden projection where the model has one (a reward model's ``score`` head is a single row),
    whether or not it shares its matrix with the embeddings."""
    body = sum(math.prod(dims) * count for dims, count in shaped.parameters(embedding_or_head=False))
    return body + (shaped.sizes["vocab"] * shaped.sizes["hidden"] if head == "causal_lm" else 0)


def _gpu_seconds(flops: float, gen_tokens: int, weight_bytes: int, peak: float, bandwidth: float,
                 passes: int = 1) -> float:
    arithmetic = flops / (peak * CALIBRATION["efficiency_gpu"])
    sampling = gen_tokens * weight_bytes / bandwidth  # each new token reads every weight once
    return CALIBRATION["step_overhead_gpu"] * passes + arithmetic + sampling


def _on_gpu(cfg: Config, stage, shaped: Shape, length: int, gpu: GPU) -> dict:
    on = dataclasses.replace(cfg, bf16=not cfg.fp16, pure_bf16=False)
    planned = _estimate(on, stage, shaped, length, True, int(gpu.memory * 0.92), None, 1.0, False, False, gpu)
    seconds = planned.seconds_per_step
    out = {"name": gpu.name, "peak_memory_bytes": planned.peak, "fits": planned.peak <= gpu.memory * 0.92,
           "seconds_per_step": seconds}
    if stage.plain_loading is None:  # Unsloth applies: its own claim, about twice as fast
        out["seconds_per_step_unsloth"] = seconds / CALIBRATION["unsloth_speed"]
    return out


def _fixes(cfg: Config, stage, length: int, cuda: bool, free: int, rate, was: Estimate) -> list[dict]:
    """The changes that bring the peak under ``free``, each alone with its new peak, cheapest first (in what they cost
    in time or quality: checkpointing, a smaller batch with more accumulation, shorter rows, a lower LoRA rank,
    LoRA, 4-bit QLoRA); where none does alone, all of them, in that order."""
    tries = []
    if not was.gradient_checkpointing and stage.trainer_loop:
        tries.append(("gradient_checkpointing: true", {"gradient_checkpointing": True}, length))
    batch = cfg.per_device_train_batch_size
    if batch > 1:
        smaller = max(1, batch // 4) if batch >= 4 else 1
        tries.append((f"per_device_train_batch_size: {smaller}, gradient_accumulation_steps: "
                      f"{cfg.gradient_accumulation_steps * batch // smaller}",
                      {"per_device_train_batch_size": smaller,
                       "gradient_accumulation_steps": cfg.gradient_accumulation_steps * batch // smaller}, length))
    if length > 256:
        tries.append((f"cutoff_len: {length // 2}", {"cutoff_len": length // 2}, length // 2))
    if cfg.finetuning_type == "lora" and cfg.lora_rank > 4:
        tries.append((f"lora_rank: {cfg.lora_rank // 4}", {"lora_rank": cfg.lora_rank // 4}, length))
    if cfg.finetuning_type != "lora":
        tries.append(("finetuning_type: lora", {"finetuning_type": "lora"}, length))
    if cuda and cfg.quantization_bit is None:
        tries.append(("quantization_bit: 4 (QLoRA, on a GPU)", {"quantization_bit": 4, "finetuning_type": "lora"},
                      length))
    found = []
    for change, keys, new_length in tries:
        changed = dataclasses.replace(cfg, **keys)
        new = _estimate(changed, stage, model_shape(changed, stage.head), new_length, cuda, free, keys.get("gradient_checkpointing"),
                        rate or 1.0, False, False)
        found.append({"change": change, "peak_memory_bytes": new.peak, "fits": new.fits})
    fitting = [f for f in found if f["fits"]]
    return fitting or found


# ---------------------------------------------------------------------------------------------
# what a plan keeps between calls (so that the second plan of a model and its data imports no torch)
# ---------------------------------------------------------------------------------------------

_CACHE_VERSION = 2  # bump when what is cached is computed differently
_CACHE_ENTRIES = 64  # per section; the oldest go first


def _cache(section: str, key: str, value=None):
    """The value cached under ``key`` in ``TUNEKIT_HOME/plan_cache.json`` (None if none); with ``value``, store it."""
    from .home import cache_home

    path = cache_home() / "plan_cache.json"
    try:
        cached = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):  # a cache half written by another process: start again
        cached = {}
    entries = cached.setdefault(section, {})
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    if value is None:
        return entries.get(digest)
    entries.pop(digest, None)
    entries[digest] = value
    cached[section] = dict(list(entries.items())[-_CACHE_ENTRIES:])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".plan_cache-{os.getpid()}.json")
    tmp.write_text(json.dumps(cached))
    tmp.replace(path)
    return value


# ---------------------------------------------------------------------------------------------
# this machine
# ---------------------------------------------------------------------------------------------


def free_memory(cuda: bool) -> int:
    """Bytes free for a run: the GPU's free memory, or the machine's available memory."""
    if cuda:
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def machine_rate(what: str = "matmul") -> float:
    """This machine's fp32 matrix-multiply rate (FLOP/s) with torch's threads; with ``what="bandwidth"`` the rate
    at which it reads memory (bytes/s). Each is probed once (under a second) and cached in ``TUNEKIT_HOME`` by CPU
    and thread count."""
    import platform

    from .home import cache_home

    threads = os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0))
    key = f"{platform.machine()}-{os.cpu_count()}-{threads}-{platform.processor() or 'cpu'}"
    key += "" if what == "matmul" else f"-{what}"
    path = cache_home() / "machine_rate.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    if key in cached:
        return float(cached[key])
    import torch

    if what == "matmul":
        a, b = torch.randn(512, 1024), torch.randn(1024, 2048)
        work, done = lambda: a @ b, 2 * 512 * 1024 * 2048
    else:  # 256 MiB summed: far more than any cache holds
        a = torch.randn(64 * 2**20)
        work, done = a.sum, a.numel() * 4
    work()
    rate = 0.0
    for _ in range(12):  # the fastest of twelve bursts: a shared machine's other work slows some of them, not the CPU
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < 0.075:
            work()
            count += 1
        rate = max(rate, done * count / (time.perf_counter() - start))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cached | {key: rate}))
    return rate


def cuda_here() -> bool:
    """Whether torch sees a GPU; on a machine with no NVIDIA driver, answered without importing torch."""
    import sys

    if "torch" not in sys.modules and not any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl")):
        return False
    import torch

    return torch.cuda.is_available()


def this_gpu() -> GPU:
    """The GPU torch uses, with the published figures of the ``GPUS`` entry its name matches (an H200's own; another
    GPU's a middling guess: 100 TFLOP/s, 1 TB/s)."""
    import torch

    name, memory = torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory
    if "H200" in name:
        return GPU(name, memory, 989e12, 4800e9)
    return next((g for g in GPUS if g.name.split()[0] in name), GPU(name, memory, 100e12, 1000e9))


def sample_length(cfg: Config, stage, sample: int = 200) -> tuple[int, int | None]:
    """(the tokens of the longest of the first ``sample`` rows, capped at ``cutoff_len``; the training rows): packed
    rows are ``cutoff_len`` long; where the rows cannot be read here (saved rows, a hub set offline), ``cutoff_len``
    and None. The rows' lengths are cached by the data's files and the keys that shape the rows (not ``cutoff_len``,
    the batch or the optimizer), so that changing those plans again without reading the rows."""
    if cfg.tokenized_path or stage.packed(cfg):
        return cfg.cutoff_len, None
    key = _rows_key(cfg, stage, sample)
    found = _cache("lengths", key) if key else None
    if found is None:
        found = _read_lengths(cfg, stage, sample)
        if found is None:  # no rows here
            return cfg.cutoff_len, None
        if key and (found["lengths"] is not None or Path(cfg.model_name_or_path).is_dir()):
            _cache("lengths", key, found)  # (a hub tokenizer that cannot be read offline may be read later)
    if not found["lengths"]:  # no tokenizer here (a folder with only config.json): the longest rows cutoff_len allows
        return cfg.cutoff_len, found["rows"]
    longest = max(found["lengths"])
    if stage.samples:  # sampling stages: the prompt and the answer share cutoff_len
        longest += cfg.max_new_tokens
    return min(cfg.cutoff_len, longest), found["rows"]


def _read_lengths(cfg: Config, stage, sample: int) -> dict | None:
    """{"lengths": the first rows' tokens (None without a tokenizer), "rows": the training rows}; None without rows."""
    from .data import load_rows, row_length
    from .errors import TunekitError
    from .models import load_tokenizer

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the data's own lines come with the run
            part = load_rows(dataclasses.replace(cfg, do_train=True), stage.rows)["train"]
    except (TunekitError, OSError, ValueError):
        return None
    try:
        tokenizer = load_tokenizer(cfg)
    except (TunekitError, OSError, ValueError):
        return {"lengths": None, "rows": len(part)}
    if stage.samples:  # the prompt, which the sampled answer follows (prompt-only rows have no answer to count)
        from .data import prompt_ids, split_answer

        length = lambda row: len(prompt_ids(tokenizer, split_answer(row["messages"])[0], row.get("tools")))
    else:
        length = lambda row: row_length(tokenizer, row)
    return {"lengths": [length(part[i]) for i in range(min(sample, len(part)))], "rows": len(part)}


_NOT_ROWS = ("cutoff_len", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
             "learning_rate", "num_train_epochs", "max_steps", "gradient_checkpointing", "output_dir",
             "overwrite_output_dir", "logging_steps", "save_steps", "eval_steps", "optim", "finetuning_type", "bf16",
             "fp16", "pure_bf16", "quantization_bit", "max_new_tokens", "num_generations", "backend", "report_to",
             "plot_loss", "warmup_ratio", "warmup_steps", "weight_decay", "lr_scheduler_type", "max_grad_norm",
             "pref_beta", "pref_loss", "ppo_epochs", "ppo_buffer_size")  # keys that do not change the rows read


def _rows_key(cfg: Config, stage, sample: int) -> str | None:
    """What the first rows' lengths depend on: the keys that shape the rows (every key but ``_NOT_ROWS`` and the
    optimizer's and adapters' own) and each data file's size and time; None where a set is not files here (rows in
    memory are named by their fingerprint, so they are keyed too; a hub set is read each time)."""
    from .data import find_set
    from .data.registry import data_files
    from .errors import TunekitError

    stamps = []
    for name in [n.strip() for n in (cfg.dataset or "").split(",") if n.strip()]:
        try:
            entry = find_set(name, cfg.dataset_dir, cfg.dataset_split)
            if entry.hf_hub_url and not entry.file_name:
                return None
            files = [] if entry.rows is not None else data_files(entry)
        except (TunekitError, OSError, ValueError):
            return None
        stamps.append([name, [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in map(Path, files)]])
    keys = {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in _NOT_ROWS and not k.startswith(("lora_", "galore_", "muon_", "badam_", "apollo_", "freeze_"))}
    model = Path(cfg.model_name_or_path).expanduser()  # a folder's files: whether it has a tokenizer, and which
    files = sorted([f.name, f.stat().st_mtime_ns] for f in model.iterdir() if f.is_file()) if model.is_dir() else []
    return json.dumps([stage.name, stage.rows, sample, keys, stamps, files, _CACHE_VERSION], default=str,
                      sort_keys=True)


def against_measurement(est: Estimate, log: list[dict]) -> dict:
    """The prediction and the measurement side by side (for ``all_results.json``), said in one line."""
    from .distributed import say

    cuda = est.device == "cuda"
    peak, step = measured_peak(cuda), median_step_seconds(log)
    out = {"plan_peak_memory_bytes": est.peak, "measured_peak_memory_bytes": peak,
           "plan_seconds_per_step": est.seconds_per_step, "measured_seconds_per_step": step}
    what = "max_memory_allocated" if cuda else "peak RSS"
    timed = f"; {est.seconds_per_step:.3g} s/step predicted, {step:.3g} measured (median)" if step else ""
    say(f"[tunekit] plan against measurement: peak {est.peak / GIB:.2f} GiB predicted, {peak / GIB:.2f} GiB measured "
        f"({what}){timed}")
    return out


def start_measuring(cuda: bool) -> None:
    """Count the run's peak from now: a notebook's kernel may hold what earlier runs left (their high-water mark is
    not this run's). CUDA: torch's peak statistics; Linux: the process's high-water mark (VmHWM), which writing 5 to
    ``/proc/self/clear_refs`` sets to the memory resident now. Elsewhere the process's peak stays what it was."""
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measured_peak(cuda: bool) -> int:
    """The run's measured peak since ``start_measuring``: ``max_memory_allocated`` on CUDA, else the process's peak
    resident memory (VmHWM on Linux; the process's whole-life ``ru_maxrss`` elsewhere)."""
    if cuda:
        import torch

        return int(torch.cuda.max_memory_allocated())
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def median_step_seconds(log: list[dict]) -> float | None:
    """The median seconds per optimizer step from a run's log (``elapsed`` per step), the first step left out
    (it carries the warm-up)."""
    times = [(r["step"], r["elapsed"]) for r in log if "elapsed" in r and "step" in r and "loss" in r]
    gaps = sorted((t2 - t1) / (s2 - s1) for (s1, t1), (s2, t2) in zip(times, times[1:]) if s2 > s1)
    if not gaps:
        return None
    middle = len(gaps) // 2
    return gaps[middle] if len(gaps) % 2 else (gaps[middle - 1] + gaps[middle]) / 2


__all__ = ["Estimate", "estimate", "GPUS", "activation_bytes", "step_flops", "machine_rate", "measured_peak",
           "median_step_seconds"]
