"""The LM head on a CPU: log-probabilities of the labelled positions only, through the model's own head.

trl 1.16's sft, dpo, kto and grpo trainers score tokens with ``model(..., labels=..., fused_lm_head=True)``,
a forward that ``trl.trainer.utils.add_fused_lm_head`` puts on the model. On a GPU with triton it projects
only the positions that carry a label, in tiles. Elsewhere it projects *every* position (the prompt and the
padding too), computes entropy, mean logit and top-1 for its metrics in the same tiles, and projects again in
the backward pass; on 2 CPU cores that made an sft step of SmolLM2-135M 1.3x slower than the model's own loss
(docs/speed.md; ``bench/vs_llamafactory.py``).

``CompactLMHead`` is a trainer mixin for CPU runs: once trl has patched the model, it gives it a forward
that projects only the labelled positions (the answer tokens) through the model's own head, with plain
autograd, and returns trl's ``FusedCausalLMOutput``, so trl's losses and metrics read it unchanged. Models
whose head does more than a projection (logit soft-capping or scaling, MoE router losses) keep trl's.
"""

from __future__ import annotations

import types

MAX_SCORED = 2**28  # labelled positions x vocabulary above this (1 GiB of fp32 logits): trl's tiled head instead


def _plain_head(config) -> bool:
    """Is the model's LM head a plain projection (what the compact forward reproduces)?"""
    text = config.get_text_config()
    return not any(getattr(text, name, None) for name in (
        "final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling",
        "output_router_logits"))


def score_labelled_positions(model, temperature: float = 1.0, sum_sq: bool = False) -> None:
    """Give ``model`` (already patched by trl's ``add_fused_lm_head``) a ``fused_lm_head=True`` forward that
    projects only the positions whose next-token label is not -100. ``sum_sq``: also ``log_sum_sq_probs``."""
    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    trl_forward = model.forward  # trl's fused forward: kept for the cases this one leaves to it
    own_forward = type(model).forward

    def compact_forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None,
                        **kwargs):
        if not fused_lm_head:  # generation and the model's own loss: the model's own forward
            extra = {k: v for k, v in (("labels", labels), ("shift_labels", shift_labels),
                                       ("num_items_in_batch", num_items_in_batch)) if v is not None}
            return own_forward(self, *args, **kwargs, **extra)
        target = labels[:, 1:] if shift_labels is None else shift_labels
        mask = target != -100
        if kwargs.get("output_router_logits") or int(mask.sum()) * self.config.get_text_config().vocab_size > MAX_SCORED:
            return trl_forward(*args, fused_lm_head=True, labels=labels, shift_labels=shift_labels,
                               num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        hidden = hidden[:, :-1] if shift_labels is None else hidden
        logits = self.get_output_embeddings()(hidden[mask]).float()
        if temperature != 1.0:
            logits = logits / temperature
        log_softmax = logits.log_softmax(-1)
        chosen = target[mask]
        fields = {"log_probs": log_softmax.gather(-1, chosen[:, None]).squeeze(-1)}
        with torch.no_grad():  # the metrics trl logs, from the same logits
            fields["entropy"] = -(log_softmax.exp() * log_softmax).sum(-1)
            fields["mean_logits"] = logits.mean(-1)
            fields["is_top1"] = logits.argmax(-1) == chosen
            if sum_sq:
                fields["log_sum_sq_probs"] = torch.logsumexp(2 * log_softmax, -1)
        # masked_scatter keeps the output connected to the model when no position carries a label
        fields = {k: v.new_zeros(mask.shape).masked_scatter(mask, v) for k, v in fields.items()}
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(loss=-fields["log_probs"].sum() / count, label_mask=mask, **fields)

    model.forward = types.MethodType(compact_forward, model)


class CompactLMHead:
    """Trainer mixin (CPU runs of trl's sft, dpo, kto, grpo trainers): after trl's ``__init__`` has put its fused
    LM head on the policy (and the reference copy, if any), give them ``score_labelled_positions``' forward."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from accelerate.utils import is_peft_model

        temperature = getattr(self, "temperature", 1.0)  # grpo samples and scores at its temperature
        policy = self.model.get_base_model() if is_peft_model(self.model) else self.model
        for model in (policy, getattr(self, "ref_model", None)):
            if model is not None and "forward" in vars(model) and _plain_head(model.config):  # patched by trl
                score_labelled_positions(model, temperature, sum_sq=getattr(self, "use_weighting", False))
