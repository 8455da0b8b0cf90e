"""Models: resolve a name, the built-in models, load, adapters, Unsloth, reward models. One job a file:

- ``resolve.py``   alias, local folder or hub id -> what transformers loads (folders checked first)
- ``builtin.py``   the built-in models that need no network: the default (SmolLM2-135M-Instruct) and the
                   tiny random Llama of the tests, built once and cached under ``cache_home()``
- ``load.py``      ``load_tokenizer`` / ``load_model`` for a config (the one place models are loaded)
- ``adapters.py``  ``finetuning_type``: LoRA (new, or continued from ``adapter_name_or_path``), freeze, full
- ``unsloth.py``   loading through Unsloth's ``FastLanguageModel`` (``backend: unsloth``)
- ``reward.py``    the rm stage's outputs: ``load_reward_model``, ``score`` and ``score_ids``
"""

from .adapters import attach_adapters, linear_module_names, trainable_summary
from .builtin import ALIASES, SMOLLM2, TINY, cache_home
from .load import load_for_inference, load_model, load_tokenizer, quiet_loading
from .resolve import resolve_model
from .reward import load_reward_model, quiet_score_head, reward_model_config, score, score_ids
from .unsloth import unsloth_checkpointing, unsloth_load_kwargs, unsloth_peft_kwargs

__all__ = ["ALIASES", "SMOLLM2", "TINY", "attach_adapters", "cache_home", "linear_module_names", "load_for_inference",
           "load_model", "load_reward_model", "load_tokenizer", "quiet_loading", "quiet_score_head", "resolve_model", "reward_model_config",
           "score", "score_ids", "trainable_summary", "unsloth_checkpointing", "unsloth_load_kwargs", "unsloth_peft_kwargs"]
