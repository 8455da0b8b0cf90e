"""Which libraries train: ``backend: auto | hf | unsloth``.

- ``hf``: transformers + peft + trl, on any machine.
- ``unsloth``: Unsloth's fast LoRA/QLoRA kernels and its patched trl trainers; needs a CUDA GPU and
  the optional extra (``pip install "tunekit[unsloth]"``).
- ``auto`` (default): ``unsloth`` when CUDA is available and the package is installed, else ``hf``.

Unsloth patches transformers, trl and peft when it is imported, so it must be imported before them.
Importing tunekit, its stages and its panels imports none of the three; the first ``tk.load_config``
(a notebook's config, the CLI's YAML) imports Unsloth when the config's backend resolves to it
(``import_first``), and ``activate`` makes sure of it again where models load (``tk.train``,
``tk.load_model``, ``tk.load_tokenizer``). When they were imported first, a warning says what to do
(restart the kernel and load the config first). Nothing here imports unsloth unless it is chosen.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from .config import Config, comma_list
from .errors import ConfigError, warn

INSTALL = 'pip install "tunekit[unsloth]"'
PATCHED = ("transformers", "trl", "peft")  # what Unsloth must be imported before


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def unsloth_installed() -> bool:
    return "unsloth" in sys.modules or importlib.util.find_spec("unsloth") is not None


def choose_backend(config: Config | str = "auto", stage=None, *, cuda: bool | None = None,
                   installed: bool | None = None) -> str:
    """``"hf"`` or ``"unsloth"`` for a config (or a ``backend`` value alone), or a ``ConfigError`` when the
    one asked for cannot run here. For a config, also the checks that depend on the machine: QLoRA needs
    CUDA, and trl 1.15 cannot run a stage that uses its fused LM head on a CPU (``stage``, the config's
    ``tunekit.stages.Stage``, says whether it does). ``cuda`` and ``installed`` are the probes (found out
    when None; tests pass them)."""
    cfg = config if isinstance(config, Config) else None
    requested = cfg.backend if cfg is not None else config
    cuda = cuda_available() if cuda is None else cuda
    if cfg is not None and cfg.quantization_bit is not None and not cuda:
        raise ConfigError(f"quantization_bit={cfg.quantization_bit} (QLoRA) needs a CUDA GPU (bitsandbytes or "
                          "Unsloth); remove it to train in fp32 on this CPU")
    if cfg is not None and stage is not None and not cuda and stage.fused_lm_head(cfg) and _trl_version() < (1, 16):
        raise ConfigError(f"stage={cfg.stage} on a CPU needs trl 1.16 or newer (trl {_trl_version_text()}'s fused "
                          "LM head needs triton and a GPU); pip install 'trl>=1.16,<1.17'")
    if requested == "hf":
        return "hf"
    installed = unsloth_installed() if installed is None else installed
    if requested == "unsloth":
        missing = [what for what, ok in (("a CUDA GPU, and none is visible", cuda),
                                         ("the unsloth package, which is not installed", installed)) if not ok]
        if missing:
            fix = INSTALL if cuda else f"on a CUDA machine, {INSTALL}" if not installed else "run it on a CUDA machine"
            raise ConfigError(f"backend=unsloth needs {' and '.join(missing)}; {fix}, or use backend: auto "
                              "(the plain transformers path, on any machine)")
        return "unsloth"
    return "unsloth" if cuda and installed else "hf"


def activate(cfg: Config, stage=None, *, cuda: bool | None = None, installed: bool | None = None) -> str:
    """Check and choose ``cfg``'s backend, and import Unsloth now when it is the one. Returns ``"hf"`` or
    ``"unsloth"``. Called when a run is planned and where models load, before transformers, trl and peft."""
    backend = choose_backend(cfg, stage, cuda=cuda, installed=installed)
    if backend == "unsloth":
        import_unsloth()
    return backend


def import_first(raw: dict) -> None:
    """Import Unsloth when a raw config's backend resolves to it, before anything imports transformers
    (``load_config`` calls this first). Costs nothing where unsloth is not installed."""
    if str(raw.get("backend", "auto")) in ("auto", "unsloth") and unsloth_installed() and cuda_available():
        import_unsloth()


def import_unsloth():
    """``import unsloth``, with a warning when transformers, trl or peft came first (it cannot patch them)."""
    if "unsloth" not in sys.modules:
        early = [name for name in PATCHED if name in sys.modules]
        if early:
            warn(f"{', '.join(early)} {'was' if len(early) == 1 else 'were'} imported before unsloth, so Unsloth "
                 "cannot patch them and training is slower and takes more memory; restart the kernel (or the "
                 "process) and choose the backend first: load the model or start training before anything imports "
                 "them, or run 'import unsloth' first")
    return importlib.import_module("unsloth")


def describe(cfg: Config, backend: str, stage=None) -> str:
    """One log line: the backend this stage trains with, and why."""
    if backend == "hf":
        why = "backend: hf" if cfg.backend == "hf" else "no CUDA GPU" if not cuda_available() else (
            f"unsloth is not installed; {INSTALL} for the faster path")
        return f"backend: hf (transformers + peft + trl; {why})"
    reason = plain_reason(cfg, stage)
    if reason:
        return f"backend: unsloth, but this run loads its model with plain transformers + peft ({reason})"
    return "backend: unsloth (FastLanguageModel and Unsloth's patched trl trainers)"


def plain_reason(cfg: Config, stage=None, head: str = "causal_lm") -> str | None:
    """Why a run with ``backend: unsloth`` loads its model with plain transformers + peft (None: it does
    not): the stage says so (``Stage.plain_loading``), or the head, the finetuning type or the adapters
    need it. Unsloth's patched trl trainers still train it."""
    if head != "causal_lm":
        return "Unsloth has no reward-model support"
    if stage is not None and stage.plain_loading:
        return stage.plain_loading
    if cfg.finetuning_type != "lora":
        return f"Unsloth is used for LoRA and QLoRA; finetuning_type={cfg.finetuning_type} loads as usual"
    if len(comma_list(cfg.adapter_name_or_path)) > 1:
        return "Unsloth loads one adapter; the plain loader merges the earlier ones in"
    return None


def _trl_version() -> tuple[int, int]:
    parts = _trl_version_text().split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def _trl_version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trl")
    except PackageNotFoundError:
        return "0.0"
