"""LLaMA-Factory's optimizer extras, through the libraries that implement them, as trainer mixins.

- ``loraplus_lr_ratio`` (LoRA+): peft's ``create_loraplus_optimizer``: each adapter's B matrix learns
  ``loraplus_lr_ratio`` times faster than its A matrix; embedding adapters at ``loraplus_lr_embedding``.
- ``use_muon``: ``torch.optim.Muon`` for the 2-D weight matrices of the hidden layers, AdamW for the rest
  (embeddings, the output head, norms and biases), as Muon is meant to be used.
- ``use_galore``: transformers' GaLore optimizers (``optim: galore_adamw``, the ``galore-torch`` package),
  on the linear layers ``galore_target`` names.

``mixins(cfg)`` gives the classes a stage's trainer is composed with (``safety.safe``); ``galore_args``
the TrainingArguments keywords. The DFT loss is sft's own (``stages/sft.py``).
"""

from __future__ import annotations

import torch

from .config import Config, comma_list


def mixins(cfg: Config) -> tuple[type, ...]:
    """The trainer mixins ``cfg`` asks for (none by default)."""
    if cfg.loraplus_lr_ratio is not None:
        return (_configured(LoraPlus, ratio=cfg.loraplus_lr_ratio, embedding_lr=cfg.loraplus_lr_embedding),)
    if cfg.use_muon:
        return (MuonForMatrices,)
    return ()


def _configured(mixin: type, **values) -> type:
    return type(mixin.__name__, (mixin,), values)


class LoraPlus:
    """LoRA+ (Hayou et al., 2024): the optimizer gives each B matrix ``ratio`` x the learning rate."""

    ratio: float = 16.0
    embedding_lr: float = 1e-6

    def create_optimizer(self, *args, **kwargs):
        if self.optimizer is None:
            from peft.optimizers import create_loraplus_optimizer

            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            optimizer_kwargs = {k: v for k, v in optimizer_kwargs.items() if k != "lr"}
            self.optimizer = create_loraplus_optimizer(
                model=self.model, optimizer_cls=optimizer_cls, lr=self.args.learning_rate, loraplus_lr_ratio=self.ratio,
                loraplus_lr_embedding=self.embedding_lr, weight_decay=self.args.weight_decay, **optimizer_kwargs)
        return self.optimizer


class MuonForMatrices:
    """Muon (``torch.optim.Muon``) on the hidden layers' trainable 2-D matrices, AdamW on everything else."""

    def create_optimizer(self, *args, **kwargs):
        if self.optimizer is None:
            matrices, rest = [], []
            for name, param in self.model.named_parameters():
                if not param.requires_grad:
                    continue
                hidden = param.ndim == 2 and "embed" not in name and "lm_head" not in name and "score" not in name
                (matrices if hidden else rest).append(param)
            self.optimizer = MuonAndAdamW(matrices, rest, lr=self.args.learning_rate,
                                          weight_decay=self.args.weight_decay)
        return self.optimizer


class MuonAndAdamW(torch.optim.Optimizer):
    """One optimizer over two: Muon for ``matrices``, AdamW for ``rest``; one learning-rate schedule for both
    (the param groups are theirs, so the Trainer's scheduler and checkpoints see every group)."""

    def __init__(self, matrices: list, rest: list, lr: float, weight_decay: float = 0.0):
        self.parts = []
        if matrices:
            self.parts.append(torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay))
        if rest:
            self.parts.append(torch.optim.AdamW(rest, lr=lr, weight_decay=weight_decay))
        super().__init__([{"params": [p for part in self.parts for g in part.param_groups for p in g["params"]]}],
                         {"lr": lr})
        self.param_groups = [g for part in self.parts for g in part.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True):
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict):
        for part, saved in zip(self.parts, state_dict["parts"]):
            part.load_state_dict(saved)


def galore_args(cfg: Config, linear_names: list[str]) -> dict:
    """TrainingArguments keywords for GaLore (empty unless ``use_galore``)."""
    if not cfg.use_galore:
        return {}
    targets = linear_names if cfg.galore_target.strip().lower() == "all" else comma_list(cfg.galore_target)
    name = "galore_adamw_layerwise" if cfg.galore_layerwise else "galore_adamw"
    return {"optim": name, "optim_target_modules": targets,
            "optim_args": f"rank={cfg.galore_rank},update_proj_gap={cfg.galore_update_interval},"
                          f"scale={cfg.galore_scale},proj_type={cfg.galore_proj_type}"}
