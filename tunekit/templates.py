"""Chat templates: the ``template`` key, as LLaMA-Factory names them.

- A tokenizer's own chat template is the model's real format, and it is used: a LLaMA-Factory config
  names a template in every file, and for a chat model that name mostly repeats what the tokenizer knows.
  Except ``chatml`` and ``alpaca``, which LLaMA-Factory renders in place of the tokenizer's own, and so does
  tunekit (``template: chatml`` adds no default system prompt).
  When the named format differs from the tokenizer's own (``template: llama3`` for a ChatML tokenizer),
  one warning says so, and which one is used.
- A tokenizer without a template gets the named one where tunekit has it built in (``chatml`` and the
  ChatML family, ``llama3``, ``mistral``, ``alpaca``, ``default``); else a ``ConfigError`` names those.
- ``*_nothink`` names (``qwen3_nothink``) and ``enable_thinking: false`` turn thinking off in the chat
  template (Qwen3-style ``enable_thinking``), for training, evaluation and generation alike.
- A name LLaMA-Factory does not know is a ``ConfigError`` (``check_template_name``, called by the config).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import ConfigError, warn

CHATML = (  # {% generation %} marks what the assistant says (transformers' return_assistant_tokens_mask)
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

ALPACA = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)

MISTRAL = (  # [INST] turns; a system message goes before the first user turn's text
    "{{ bos_token }}{% set system = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + (system + '\n\n' if system and loop.first else '') + message['content'] | trim + ' [/INST]' }}"
    "{% else %}{{ message['content'] | trim + eos_token }}{% endif %}"
    "{% endfor %}"
)

TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "alpaca": ALPACA, "mistral": MISTRAL, "default": CHATML}
# Names whose format LLaMA-Factory renders in place of the tokenizer's own chat template (its
# ``replace_jinja_template``): ``template: chatml`` on SmolLM2 adds no system prompt, where SmolLM2's own adds one.
REPLACES = ("chatml", "alpaca")
# LLaMA-Factory's template names (src/llamafactory/data/template.py registers these), so that its YAML files
# are understood here; the text-only ones are the ones a tunekit run can use.
LLAMAFACTORY = (
    "alpaca", "aeva", "bailing", "bailing_v2", "breeze", "chatglm3", "chatml", "chatml_de", "cohere", "cpm4", "dbrx",
    "deepseek", "deepseek3", "deepseekcoder", "deepseekr1", "default", "dots_ocr", "empty", "ernie", "ernie_nothink",
    "ernie_vl", "exaone", "falcon", "falcon_h1", "fewshot", "gemma", "gemma2", "gemma3", "gemma3n", "gemma4", "gemma4n",
    "glm4", "glm4_5v", "glm4_7", "glm4_moe", "glm4v", "glm_ocr", "glmz1", "gpt_oss", "granite3", "granite3_vision",
    "granite4", "hunyuan", "hunyuan_small", "hy3", "hy_dense_1_8b", "hy_dense_7b", "index", "intern2", "intern_s1",
    "intern_vl", "keye_vl", "kimi_vl", "lfm2", "lfm2_vl", "llama2", "llama2_zh", "llama3", "llama4", "llava",
    "llava_next", "llava_next_llama3", "llava_next_mistral", "llava_next_qwen", "llava_next_video",
    "llava_next_video_mistral", "llava_next_video_yi", "llava_next_yi", "mimo", "mimo_v2", "mimo_vl", "minicpm_o",
    "minicpm_v", "minicpm_v_4_6", "minimax1", "minimax2", "ministral", "ministral3", "mistral", "mistral_small",
    "mllama", "moonlight", "moss_vl", "olmo", "openchat", "openchat-3.6", "opencoder", "paligemma", "paligemma_chat",
    "phi", "phi4", "phi4_mini", "phi_small", "pixtral", "qwen", "qwen2_audio", "qwen2_omni", "qwen2_vl", "qwen3",
    "qwen3_5", "qwen3_5_nothink", "qwen3_6", "qwen3_nothink", "qwen3_omni", "qwen3_omni_nothink", "qwen3_vl",
    "qwen3_vl_nothink", "sailor", "seed_coder", "seed_oss", "smollm", "smollm2", "solar", "starchat", "telechat2",
    "vicuna", "video_llava", "xuanyuan", "yi", "yi_vl", "youtu", "youtu_vl", "yuan", "zephyr",
)
KNOWN = tuple(sorted(set(LLAMAFACTORY) | set(TEMPLATES)))
# The token that marks each format family, to tell whether a tokenizer's own template is the named format.
_CHATML_NAMES = ("chatml", "qwen", "qwen3", "qwen3_5", "qwen3_6", "qwen2_vl", "qwen3_vl", "smollm", "smollm2", "yi",
                 "sailor", "opencoder", "hunyuan_small", "moss_vl", "default")
MARKERS = {
    **{name: "<|im_start|>" for name in _CHATML_NAMES},
    **{name: "<|start_header_id|>" for name in ("llama3", "llava_next_llama3", "mllama")},
    **{name: "[INST]" for name in ("llama2", "llama2_zh", "mistral", "ministral", "mistral_small", "pixtral")},
    **{name: "<start_of_turn>" for name in ("gemma", "gemma2", "gemma3", "gemma3n")},
    "alpaca": "### Instruction:",
    "phi": "<|user|>",
    "phi4": "<|im_sep|>",
}


def base_name(name: str) -> str:
    """A template name without its ``_nothink`` ending, lower-cased."""
    key = name.strip().lower()
    return key[: -len("_nothink")] if key.endswith("_nothink") else key


def check_template_name(name: str | None) -> None:
    """A ``ConfigError`` for a ``template`` name that neither LLaMA-Factory nor tunekit knows."""
    if name is None or name.strip().lower() in KNOWN:
        return
    close = difflib.get_close_matches(name.strip().lower(), KNOWN, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"template={name!r} is not a template LLaMA-Factory or tunekit knows; {hint}use the model's "
                      f"own (leave template out) or one of: {', '.join(KNOWN)}")


def ensure_chat_template(tokenizer, name: str | None, enable_thinking: bool = True,
                         preserve_thinking: bool = False) -> None:
    """Give ``tokenizer`` its chat template: its own (with one warning when ``name`` is another format), else
    the built-in one called ``name``; then thinking off for ``*_nothink`` and ``enable_thinking: false``. How it
    is rendered (``rendering.py``) is remembered on the tokenizer."""
    key = base_name(name) if name else None
    own = tokenizer.chat_template
    if own and not isinstance(own, str):  # several named templates: the default one is rendered
        own = own.get("default") if isinstance(own, dict) else None
    if own and key in REPLACES:
        tokenizer.chat_template = TEMPLATES[key]  # as LLaMA-Factory renders these names: no default system prompt
    elif own:
        marker = MARKERS.get(key) if key else None
        if marker and marker not in own:
            warn(f"template={name!r} is the {marker} format, but the tokenizer of this model has a chat template of "
                 "its own in another format; the tokenizer's own template is used (it is the model's real format)")
    else:
        built_in = key or "chatml"
        if built_in not in TEMPLATES and MARKERS.get(built_in) == "<|im_start|>":
            built_in = "chatml"
        if built_in not in TEMPLATES:
            raise ConfigError(f"template={name!r} is not built into tunekit and the tokenizer has no chat template of "
                              f"its own; use one of: {', '.join(TEMPLATES)} (or a model whose tokenizer has one)")
        tokenizer.chat_template = TEMPLATES[built_in]
    thinking_off = enable_thinking is False or bool(name and name.strip().lower().endswith("_nothink"))
    if thinking_off and isinstance(tokenizer.chat_template, str) and _THINKING_OFF not in tokenizer.chat_template:
        tokenizer.chat_template = _THINKING_OFF + tokenizer.chat_template
    set_style(tokenizer, name, not thinking_off, preserve_thinking)


@dataclass(frozen=True)
class Style:
    """How a tokenizer's template is rendered (``rendering.py`` reads it): the ``template`` name and the thinking
    keys."""

    template: str | None = None
    enable_thinking: bool = True
    preserve_thinking: bool = False


def template_text(tokenizer) -> str:
    """The tokenizer's chat template (the default one of several named ones), or ""."""
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    return template if isinstance(template, str) else ""


def probed(tokenizer, question: str, answer):
    """What ``answer(tokenizer)`` says of the tokenizer's chat template (does it take a system turn, tools, ...),
    worked out once per template and remembered on the tokenizer."""
    memo = tokenizer.__dict__.setdefault("tunekit_probes", {})
    key = (question, template_text(tokenizer))
    if key not in memo:
        memo[key] = answer(tokenizer)
    return memo[key]


def set_style(tokenizer, template: str | None = None, enable_thinking: bool = True,
              preserve_thinking: bool = False) -> None:
    """Remember on ``tokenizer`` how its template is rendered."""
    tokenizer.tunekit_style = Style(template.strip().lower() if template else None, enable_thinking is not False,
                                    bool(preserve_thinking))


# Prepended to a template: ``enable_thinking`` is false whatever the caller passes (Qwen3-style templates then
# write an empty think block after the generation prompt and drop the reasoning of earlier turns).
_THINKING_OFF = "{%- set enable_thinking = false -%}"
