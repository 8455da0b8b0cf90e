"""rm: a reward model, trained on preference pairs with trl's ``RewardTrainer``.

Keys: ``dataset`` (a preference set: sharegpt or alpaca with ``ranking: true``; ``dpo_en_demo``),
``cutoff_len`` (longer pairs are cut to fit, see ``data/cutoff.py``), ``output_dir`` (``reward_model`` of a later ppo or grpo run),
``val_size`` (held-out pairs: ``eval_accuracy``). The model is the base with a scalar head
(sequence classification, ``num_labels=1``); with LoRA the head trains too and is saved with the
adapter, so the output folder loads on its own with ``tk.load_reward_model`` (and scores with ``tk.score``).
Logged: ``loss``, ``accuracy`` (chosen scored above rejected), ``margin``, rewards.
"""

from __future__ import annotations

from ..config import Config
from ..data import load_rows, views
from .base import Parts, Stage, only_known
from .preference import as_tokens


def prepare(cfg: Config, tokenizer):
    """Preference rows: ``prompt`` (messages), ``chosen`` and ``rejected`` (one assistant message each)."""
    return load_rows(cfg, "pairwise", tokenizer)


def build(p: Parts):
    from trl import RewardConfig, RewardTrainer  # imported here, after the backend (Unsloth patches trl)

    from ..safety import safe

    args = RewardConfig(**only_known(RewardConfig, p.args), max_length=p.cfg.cutoff_len)
    data = as_tokens(p.tokenizer, p.data, joined=True)  # rendered by tunekit: trl takes tokenized pairs as they are
    return safe(RewardTrainer, *p.mixins)(model=p.model, args=args, train_dataset=data["train"],
                                          eval_dataset=data.get("eval"), processing_class=p.tokenizer,
                                          callbacks=p.callbacks)


STAGE = Stage(
    name="rm", rows="pairwise", prepare=prepare, build=build, show=views.pairwise, head="score",
    sequences_per_row=2, plain_loading="Unsloth has no reward-model support", predict="score",
    metrics=("loss", "accuracy", "margin", "eval_loss", "eval_accuracy", "eval_margin"),
    chart=("accuracy", "margin", "eval_accuracy"),
)
