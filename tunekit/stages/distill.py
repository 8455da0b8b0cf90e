"""distill: on-policy distillation, with trl's ``DistillationTrainer``: the student answers, the teacher grades every token.

For each prompt the student samples an answer; the teacher (a bigger or better-trained model with the same
tokenizer) reads the same tokens and gives its next-token distribution at every position, and the student is moved
towards it there. Unlike SFT on the teacher's answers (off-policy: the student copies states it would not reach by
itself), the student learns in the states its own mistakes lead to, and every token carries a signal (unlike RL's one
reward per answer).

Keys: ``teacher_model`` (a model folder, a tunekit output: a LoRA adapter on its base or a full model, a hub id or an
alias; it must share the student's vocabulary), ``pref_beta`` (the divergence, trl's ``beta``: 0 is the forward KL
(the student covers everything the teacher might say), 1 the reverse KL (the student keeps to what the teacher finds
likely, the on-policy distillation of the papers; the default here, as in trl), between: the generalised
Jensen-Shannon divergence), ``lmbda`` (the share of steps on the student's own answers; the rest train on the data's
answers, as GKD mixes them; default 1: all on-policy, as trl's trainer), ``max_new_tokens`` (answer length),
``temperature`` (sampling, and the softness of both distributions in the loss), ``dataset`` (prompts: any set grpo
reads; the answers are used by the off-policy share only).
Logged: ``loss`` (the divergence per answer token), ``entropy`` (the student's), ``completions/mean_length``,
``on_policy`` (the share of steps that sampled).
"""

from __future__ import annotations

import random
import re

from ..config import Config
from ..errors import ConfigError
from . import grpo
from .base import Parts, Stage, check_room_to_answer, only_known
from .preference import split_fresh_adapter


def check(cfg: Config) -> None:
    """A teacher is named; the divergence's beta is a share; room to answer."""
    if not cfg.teacher_model:
        raise ConfigError("stage: distill needs teacher_model: a model folder, a tunekit output (e.g. saves/grpo) or "
                          "a hub id, with the student's tokenizer")
    if cfg.pref_beta > 1:
        raise ConfigError(f"pref_beta={cfg.pref_beta} is distill's divergence: 0 forward KL, 1 reverse KL, between: "
                          "JSD; give a number from 0 to 1")
    check_room_to_answer(cfg)


def load_teacher(cfg: Config, student_tokenizer):
    """The teacher, ready to score: ``teacher_model`` loaded as a model to generate with (an adapter folder on its
    base, merged), or a one-line ``ConfigError`` when its vocabulary is not the student's."""
    from ..models import load_for_inference

    try:
        model, tokenizer = load_for_inference(cfg.teacher_model)
        if hasattr(model, "merge_and_unload"):  # a tunekit output trained with LoRA: merged into its base, for speed
            model = model.merge_and_unload()
    except ConfigError as err:  # its message names model_name_or_path: say it of the teacher
        said = re.sub(r"^model_name_or_path='[^']*'", f"teacher_model={cfg.teacher_model!r}", str(err))
        raise ConfigError(f"{said}; teacher_model takes a model folder, a tunekit output (e.g. saves/07_grpo) or "
                          "a hub id") from None
    if tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ConfigError(f"teacher_model={cfg.teacher_model!r} has another vocabulary ({len(tokenizer)} tokens) than "
                          f"the student {cfg.model_name_or_path!r} ({len(student_tokenizer)}); distillation compares "
                          "their next-token distributions token by token: give a teacher with the student's tokenizer")
    return model


class OnPolicyShare:
    """Mixin for trl's ``DistillationTrainer``: with ``lmbda`` < 1, that share of the training steps samples the
    student's answers (on-policy) and the others take the data's answers as the template writes them (off-policy, as
    GKD's ``lmbda``); which step is which is drawn from the seed and the step, so every process draws the same.
    Logs ``on_policy``."""

    def __init__(self, *args, lmbda: float = 1.0, **kwargs):
        self.lmbda = lmbda
        super().__init__(*args, **kwargs)

    def _generate_and_score_completions(self, inputs):
        self._rows = inputs  # the prompts' own answers, for the off-policy steps
        return super()._generate_and_score_completions(inputs)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
        from .. import rendering

        training = self.model.training
        draw = random.Random(self.args.seed * 100_003 + self.state.global_step).random()
        on_policy = not training or draw < self.lmbda or any(row.get("answer") is None for row in self._rows)
        if training:
            self._metrics["train"]["on_policy"].append(float(on_policy))
        if on_policy:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields)
        answers = [rendering.answer_ids(self.processing_class, row["prompt"],
                                        {"role": "assistant", "content": row["answer"]})[1] for row in self._rows]
        return [answer[: self.args.max_completion_length] for answer in answers]


def build(p: Parts):
    try:  # imported here, after the backend (Unsloth patches trl)
        from trl import DistillationConfig, DistillationTrainer
    except ImportError:
        import trl

        raise ConfigError(f"stage: distill needs trl's DistillationTrainer (trl >= 1.16); this is trl {trl.__version__}"
                          " (Unsloth pins an older one: use backend: hf)") from None

    from ..safety import safe

    cfg = p.cfg
    args = DistillationConfig(
        **only_known(DistillationConfig, p.args), max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, repetition_penalty=cfg.repetition_penalty,
        beta=cfg.pref_beta,
    )
    teacher = load_teacher(cfg, p.tokenizer)
    model, peft_config = split_fresh_adapter(cfg, p.model)
    return safe(DistillationTrainer, OnPolicyShare, *p.mixins)(
        model=model, teacher_model=teacher, args=args, train_dataset=p.data["train"], eval_dataset=p.data.get("eval"),
        processing_class=p.tokenizer, peft_config=peft_config, callbacks=p.callbacks, lmbda=cfg.lmbda)


STAGE = Stage(
    name="distill", rows="prompt", prepare=grpo.prepare, build=build, show=grpo.show, check=check,
    samples=True, teacher=True, fused_lm_head=lambda cfg: False, defaults={"pref_beta": 1.0},
    config_keys=("teacher_model", "pref_beta", "lmbda"),
    metrics=("loss", "entropy", "completions/mean_length", "on_policy", "eval_loss"),
    chart=("entropy", "completions/mean_length"),
)
