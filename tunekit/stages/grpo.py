"""grpo: group-relative policy optimisation, online RL on rewards that can be checked, with trl's ``GRPOTrainer``.

For every prompt the policy samples a group of ``num_generations`` answers; each answer's reward is
compared with its group's mean (and scaled by the group's spread), so the answers that beat their
siblings are made more likely. Unlike PPO there is no value model and no reward model is needed:
rewards are functions of the answer.

Keys: ``dataset`` (any set with prompts, ``data/detect.py``: an SFT-shaped set whose answers hold the reference,
GSM8K style ``... #### 42``, as ``math_demo``, or trl's prompt-only rows with a ``solution`` or ``answer`` column), ``reward_funcs`` (comma list: ``accuracy``, ``format``, ``length`` from
``tunekit/rewards.py``, or ``module:function`` paths called as trl calls reward functions),
``reward_weights`` (one number per reward; default 1 each), ``reward_model`` (an ``rm`` output
folder: its score is one more reward, weighted last), ``num_generations`` (answers per prompt;
``per_device_train_batch_size`` x ``gradient_accumulation_steps`` counts answers and must be a
multiple of it), ``num_generations_eval`` (answers per held-out prompt in the evaluation at the end of
training; default ``num_generations``: 1 measures the held-out rewards at a quarter of the cost of 4),
``max_new_tokens`` (answer length), ``temperature`` / ``top_p`` / ``top_k``
(sampling), ``pref_beta`` (the KL weight; above 0 the reference is the model with the LoRA adapter
disabled), ``cutoff_len`` (prompt + answer; longer prompts are left out).
Logged: ``reward`` (weighted total), ``rewards/<name>/mean`` per function, ``reward_group_std`` (the
spread within groups, the learning signal), ``kl``, ``completions/mean_length``, ``clip_ratio/*``.

The variants people run are keys of trl's ``GRPOConfig``, passed through with trl's names and defaults:

- ``loss_type`` says how the token losses are averaged: ``grpo`` over each answer's own tokens, then over the
  answers (short right answers and long wrong ones weigh more per token: a length bias); ``dr_grpo`` (Dr. GRPO) over
  a constant (``max_new_tokens`` times the answers), so no answer's length changes its tokens' weight; ``dapo`` (trl's
  default) over all the batch's answer tokens together; ``bnpo`` over the local batch's tokens; ``cispo``, ``sapo``,
  ``luspo`` and ``vespo`` clip or weight the ratio itself (trl's documentation says how).
- ``scale_rewards``: each answer's advantage is its reward minus its group's mean, divided by the group's spread
  (``group``), the batch's (``batch``) or nothing (``none``: Dr. GRPO's fix, since dividing by a small spread makes
  too-easy and too-hard prompts weigh most).
- ``epsilon`` and ``epsilon_high`` clip the ratio of new to old probabilities to [1 - epsilon, 1 + epsilon_high]: a
  higher upper bound (DAPO's clip-higher, 0.28) lets unlikely tokens that were rewarded grow faster; ``delta`` adds
  a second upper bound for negative advantages.
- ``importance_sampling_level: sequence`` is GSPO: one ratio per answer (the mean of its tokens' log-ratios) is
  clipped instead of one per token, which keeps a few extreme tokens from moving a whole update.
- ``mask_truncated_completions`` leaves answers cut at ``max_new_tokens`` out of the loss (DAPO: their reward says
  little); ``num_iterations`` updates more than once on each batch of answers (the ratio, and so the clip, only
  matters then, or with accumulation); ``top_entropy_quantile`` keeps the loss on the most uncertain share of tokens.
"""

from __future__ import annotations

import difflib

from .. import rendering
from .. import rewards as built_in_rewards
from ..config import Config, comma_list
from ..data import load_rows, prompt_ids, split_answer, views
from ..errors import ConfigError, DataError, warn
from .base import Parts, Stage, check_room_to_answer, import_function, only_known
from .preference import split_fresh_adapter


def check(cfg: Config) -> None:
    """grpo's own rules: known rewards and numeric weights, whole groups in every batch, room to answer."""
    for name in comma_list(cfg.reward_funcs):
        if ":" not in name and name not in built_in_rewards.BUILT_IN:
            close = difflib.get_close_matches(name, built_in_rewards.BUILT_IN, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"reward_funcs: {name!r} is not a built-in reward ({', '.join(built_in_rewards.BUILT_IN)}); "
                              f"{hint}or give a module:function path")
    for weight in comma_list(cfg.reward_weights):
        try:
            float(weight)
        except ValueError:
            raise ConfigError(f"reward_weights={cfg.reward_weights!r}: {weight!r} is not a number; give one number "
                              "per reward, e.g. 1.0,0.5") from None
    if cfg.num_generations < 2:
        raise ConfigError(f"num_generations={cfg.num_generations} must be at least 2: GRPO compares the answers "
                          "sampled for the same prompt")
    answers = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    if cfg.do_train and answers % cfg.num_generations:
        raise ConfigError(
            f"num_generations={cfg.num_generations} must divide per_device_train_batch_size x "
            f"gradient_accumulation_steps = {answers} (each step's answers are whole groups); make the batch a "
            f"multiple of {cfg.num_generations}, e.g. per_device_train_batch_size: {cfg.num_generations * 2}")
    if cfg.num_generations_eval is not None and cfg.num_generations_eval < 1:
        raise ConfigError(f"num_generations_eval={cfg.num_generations_eval} must be at least 1 (answers per held-out "
                          "prompt), or left out for num_generations")
    eval_group, eval_key = ((cfg.num_generations_eval, "num_generations_eval") if cfg.num_generations_eval
                            else (cfg.num_generations, "num_generations"))
    if (cfg.val_size or cfg.eval_dataset) and cfg.per_device_eval_batch_size % eval_group:
        raise ConfigError(f"per_device_eval_batch_size={cfg.per_device_eval_batch_size} must be a multiple of "
                          f"{eval_key}={eval_group} (each prompt's answers are scored together)")
    check_room_to_answer(cfg)


def prepare(cfg: Config, tokenizer):
    """Prompts and reference answers: ``prompt`` (the conversation up to the last user turn, as ``rendering.prepare``
    gives it to the template) and ``answer`` (the data set's answer to it). Prompts that leave no room for ``max_new_tokens`` within
    ``cutoff_len`` are left out."""
    import datasets

    room = cfg.cutoff_len - cfg.max_new_tokens
    out = {}
    for split, part in load_rows(cfg, "prompt").items():
        rows, long = [], 0
        for messages in part["messages"]:
            prompt, answer = split_answer(messages)
            if len(prompt_ids(tokenizer, prompt)) > room:
                long += 1
                continue
            # trl renders the prompt itself: it gets the messages as tunekit's rendering prepares them (a system turn
            # folded where the template has none), so that its text is tunekit's prompt_text
            rows.append({"prompt": rendering.prepare(tokenizer, prompt)[0], "answer": answer})
        if not rows:
            raise DataError(f"every prompt of dataset {cfg.dataset!r} is longer than cutoff_len - max_new_tokens = "
                            f"{room} tokens; raise cutoff_len or lower max_new_tokens")
        if long:
            warn(f"{long} prompts of dataset {cfg.dataset!r} ({split}) are longer than cutoff_len - max_new_tokens = "
                 f"{room} tokens and are left out")
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)


def show(cfg: Config, tokenizer, row: dict) -> list[tuple[str, dict]]:
    return views.prompt_only("prompt (the policy writes a group of answers; the rewards check them against the "
                             "data's answer)", views.prompt(tokenizer, row))


def reward_functions(cfg: Config, reward_fn=None) -> list:
    """The reward functions, in ``reward_funcs`` order, then ``reward_fn`` (a callable or a list, from
    ``tk.train``) and the reward model. Checked and imported before anything else loads."""
    functions = []
    for item in comma_list(cfg.reward_funcs):
        functions.append(import_function(item, "reward_funcs") if ":" in item
                         else built_in_rewards.built_in(item, cfg.max_new_tokens))
    if reward_fn is not None:
        functions.extend(reward_fn if isinstance(reward_fn, (list, tuple)) else [reward_fn])
    if cfg.reward_model:
        functions.append(_reward_model(cfg.reward_model))
    if not functions:
        raise ConfigError("reward_funcs is empty and there is no reward_model; name at least one reward, "
                          "e.g. reward_funcs: accuracy,format")
    weights = [float(w) for w in comma_list(cfg.reward_weights)]
    if weights and len(weights) != len(functions):
        raise ConfigError(f"reward_weights={cfg.reward_weights!r} has {len(weights)} numbers for {len(functions)} "
                          f"rewards ({', '.join(f.__name__ for f in functions)}); give one weight per reward")
    return functions


def _reward_model(path: str):
    """The ``rm`` stage's output as a reward: its score of (prompt, answer), as the rm stage scored pairs."""
    from ..models import load_reward_model, score

    model, tokenizer = load_reward_model(path)

    def reward_model(prompts, completions, **kwargs) -> list[float]:
        questions = [p[-1]["content"] if not isinstance(p, str) else p for p in prompts]
        return score(model, tokenizer, questions, [built_in_rewards.text_of(c) for c in completions])

    return reward_model


class GroupSpread:
    """Mixin for trl's ``GRPOTrainer``: also logs ``reward_group_std``, the standard deviation of the weighted
    reward within each prompt's group, averaged over the groups (trl's ``reward_std`` is the whole batch's)."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        per_function = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        total = (per_function * self.reward_weights.to(per_function.device)).nansum(dim=1)
        size = self.num_generations if self.model.training else self.num_generations_eval
        if size and size > 1 and total.numel() % size == 0:
            self._log_metric("reward_group_std", total.view(-1, size).std(dim=1).mean().item())
        return per_function


VARIANT_KEYS = ("loss_type", "importance_sampling_level", "scale_rewards", "epsilon", "epsilon_high", "delta",
                "mask_truncated_completions", "num_iterations", "top_entropy_quantile")  # trl's names, passed as set


def trl_keys(cfg: Config, config_class, keys: tuple[str, ...]) -> dict:
    """``keys`` of ``cfg`` for a trl config class; a key this trl does not have (an older trl, as Unsloth pins) is a
    one-line error where the config changed it from its default, and left out where it did not."""
    from dataclasses import fields

    known = {f.name for f in fields(config_class)}
    missing = [k for k in keys if k not in known and getattr(cfg, k) != getattr(Config, k)]
    if missing:
        import trl

        raise ConfigError(f"{', '.join(missing)}: not a key of trl {trl.__version__}'s {config_class.__name__}; remove "
                          f"it or install a trl that has it (trl >= 1.16 has them all)")
    return {k: getattr(cfg, k) for k in keys if k in known}


def build(p: Parts):
    from trl import GRPOConfig, GRPOTrainer  # imported here, after the backend (Unsloth patches trl)

    return build_group_trainer(p, GRPOConfig, GRPOTrainer, VARIANT_KEYS)


def build_group_trainer(p: Parts, config_class, trainer_class, keys: tuple[str, ...]):
    """A trl trainer that samples a group of answers per prompt and learns from their rewards (grpo's
    ``GRPOTrainer``, rloo's ``RLOOTrainer``): the config's sampling, rewards and ``keys`` in ``config_class``."""
    from ..safety import safe

    cfg = p.cfg
    weights = [float(w) for w in comma_list(cfg.reward_weights)] or None
    args = config_class(
        **only_known(config_class, p.args), num_generations=cfg.num_generations,
        num_generations_eval=cfg.num_generations_eval,
        max_completion_length=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty, beta=cfg.pref_beta, reward_weights=weights,
        **trl_keys(cfg, config_class, keys),
    )
    model, peft_config = split_fresh_adapter(cfg, p.model)  # the reference: the model with the adapter disabled
    functions = p.rewards if p.rewards is not None else reward_functions(cfg)
    return safe(trainer_class, GroupSpread, *p.mixins)(
        model=model, reward_funcs=functions, args=args, train_dataset=p.data["train"],
        eval_dataset=p.data.get("eval"), processing_class=p.tokenizer, peft_config=peft_config, callbacks=p.callbacks)


STAGE = Stage(
    name="grpo", rows="prompt", prepare=prepare, build=build, show=show, check=check, rewards=reward_functions,
    samples=True, reference=True, fused_lm_head=lambda cfg: True, config_keys=("pref_beta", "num_generations", "reward_funcs"),
    metrics=("reward", "rewards/*/mean", "reward_group_std", "kl", "completions/mean_length",
             "clip_ratio/region_mean", "loss"),
    chart=("reward", "rewards/*/mean", "reward_group_std", "kl"),  # *: each reward function, as it is logged
)
