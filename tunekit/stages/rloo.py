"""rloo: REINFORCE leave-one-out, online RL on rewards that can be checked, with trl's ``RLOOTrainer``.

Like grpo, the policy samples ``num_generations`` answers per prompt and the rewards check them; the difference is the
baseline an answer's reward is compared with: the mean reward of its *siblings* (the other answers to the same
prompt, itself left out), not of the whole group, and without dividing by the group's spread. That baseline is
unbiased (an answer's own reward is not in it), and there is no critic or value model, as in grpo. The KL to the
reference (``pref_beta``) is folded into the reward, as in PPO, rather than added to the loss.

It takes grpo's data, rewards (``reward_funcs``, ``reward_weights``, ``reward_model``) and rules (whole groups in every
batch, room to answer) and trl's clipping keys (``epsilon``, ``epsilon_high``, ``mask_truncated_completions``,
``num_iterations``); grpo's own variants (``loss_type``, ``scale_rewards``, ``importance_sampling_level``, ``delta``,
``top_entropy_quantile``) are not rloo's and are an error here.
Logged: ``reward``, ``rewards/<name>/mean``, ``reward_group_std``, ``kl``, ``completions/mean_length``,
``clip_ratio/*``.
"""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from . import grpo
from .base import Parts, Stage

KEYS = ("epsilon", "epsilon_high", "mask_truncated_completions", "num_iterations")  # trl's RLOOConfig names


def check(cfg: Config) -> None:
    """grpo's rules, and none of grpo's own variant keys."""
    grpo.check(cfg)
    changed = [k for k in grpo.VARIANT_KEYS if k not in KEYS and getattr(cfg, k) != getattr(Config, k)]
    if changed:
        raise ConfigError(f"{', '.join(changed)}: grpo's own key, not rloo's (its baseline is the other answers' "
                          "mean, not scaled); remove it, or use stage: grpo")


def build(p: Parts):
    from trl import RLOOConfig, RLOOTrainer  # imported here, after the backend (Unsloth patches trl)

    return grpo.build_group_trainer(p, RLOOConfig, RLOOTrainer, KEYS)


STAGE = Stage(
    name="rloo", rows="prompt", prepare=grpo.prepare, build=build, show=grpo.show, check=check,
    rewards=grpo.reward_functions, samples=True, reference=True, fused_lm_head=lambda cfg: True,
    config_keys=("pref_beta", "num_generations", "reward_funcs"),
    metrics=("reward", "rewards/*/mean", "reward_group_std", "kl", "completions/mean_length",
             "clip_ratio/region_mean", "loss"),
    chart=("reward", "rewards/*/mean", "reward_group_std", "kl"),
)
