"""ppo: RLHF with proximal policy optimisation against a reward model, with tunekit's own trainer
(trl removed its PPO trainer in 1.13): the math in ``ppo_math.py``, the loop in ``ppo_trainer.py``.

Keys: ``dataset`` (an SFT set: its prompts are used, its answers are not), ``reward_model`` (the
output_dir of an rm run; ``reward_model_type`` lora or full is read from the folder) or
``reward_model_type: function`` with ``reward_model: module:function`` (or ``reward_fn=`` in
``tk.train``): a callable ``(prompts, responses) -> list of floats``. Sampling: ``max_new_tokens``,
``temperature``, ``top_k``, ``top_p``. PPO: ``ppo_epochs``, ``ppo_buffer_size``, ``ppo_target``,
``ppo_score_norm``, ``ppo_whiten_rewards``, ``ppo_gamma``, ``ppo_lambda``, ``ppo_cliprange``,
``ppo_cliprange_value``, ``ppo_vf_coef``, ``ppo_init_kl_coef``, ``ppo_horizon``.
It runs in one process, keeps every activation (no gradient checkpointing), and its reference is the
policy with the LoRA adapter disabled (a frozen copy for ``full``/``freeze``).
"""

from __future__ import annotations

from ..config import Config, optimizer_keys
from ..data import load_rows, split_answer, views
from ..errors import ConfigError
from .base import Parts, Stage, check_room_to_answer, import_function, only_known


def check(cfg: Config) -> None:
    if not cfg.reward_model and cfg.reward_model_type != "function":
        raise ConfigError("stage=ppo needs reward_model: the output_dir of an rm run (e.g. saves/.../reward)")
    check_room_to_answer(cfg)
    optimizers = optimizer_keys(cfg)
    if optimizers:
        raise ConfigError(f"{optimizers[0]} chooses a Trainer's optimizer, and stage=ppo trains with tunekit's own loop and "
                          "AdamW; remove it for ppo")


def prepare(cfg: Config, tokenizer):
    """Prompts: ``prompt`` (the conversation up to the last user turn) of each row that has one."""
    import datasets

    rows = load_rows(cfg, "prompt")
    return datasets.DatasetDict({
        split: part.map(lambda row: {"prompt": split_answer(row["messages"])[0]}, remove_columns=["messages"])
        for split, part in rows.items()
    })


def show(cfg: Config, tokenizer, row: dict) -> list[tuple[str, dict]]:
    from .ppo_trainer import encode_prompt

    ids = encode_prompt(tokenizer, split_answer(row["messages"])[0], cfg)
    return views.prompt_only("prompt (the policy writes the answer)", ids)


def reward_function(cfg: Config, reward_fn=None):
    """``(prompts, responses) -> list of floats`` from ``reward_fn``, ``module:function`` or an rm folder."""
    if reward_fn is not None:
        return reward_fn
    if cfg.reward_model_type == "function":
        target = cfg.reward_model or ""
        module_name, _, name = target.partition(":")
        if not module_name or not name:
            raise ConfigError(
                f"reward_model={target!r}: with reward_model_type: function, give module:function "
                "(or pass reward_fn= to tk.train)"
            )
        return import_function(target, "reward_model")
    from ..models import load_reward_model, score

    model, tokenizer = load_reward_model(cfg.reward_model)
    return lambda prompts, responses: score(model, tokenizer, prompts, responses)


def build(p: Parts):
    from transformers import TrainingArguments

    from .ppo_trainer import PPOTrainer

    args = TrainingArguments(**only_known(TrainingArguments, {**p.args, "eval_strategy": "no"}))
    rewards = p.rewards if p.rewards is not None else reward_function(p.cfg)
    return PPOTrainer(p.cfg, args, p.model, p.tokenizer, p.data["train"], p.data.get("eval"), rewards, p.callbacks)


STAGE = Stage(
    name="ppo", rows="prompt", prepare=prepare, build=build, show=show, check=check, rewards=reward_function,
    multi_process=False, samples=True, reference=True, trainer_loop=False,
    plain_loading="tunekit's own PPO loop, with a value head and a reference beside the policy",
    metrics=("loss", "reward", "reward_norm", "kl", "kl_k3", "kl_coef", "entropy", "policy_loss", "value_loss",
             "clip_fraction", "approx_kl", "response_length", "eval_reward"),
    chart=("reward", "kl_k3", "kl", "eval_reward"),
)
