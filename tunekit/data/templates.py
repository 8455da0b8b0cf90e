"""Built-in chat templates, for tokenizers that carry none (``template: chatml`` and friends).

A tokenizer's own template always wins: LLaMA-Factory configs name a template in every file, and
for a chat model that name only repeats what its tokenizer already knows.
"""

from __future__ import annotations

from ..config import ConfigError

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

TEMPLATES = {"chatml": CHATML, "qwen": CHATML, "llama3": LLAMA3, "alpaca": ALPACA, "default": CHATML}


def ensure_chat_template(tokenizer, name: str | None) -> None:
    """Give ``tokenizer`` a chat template: its own, else the built-in one called ``name``."""
    if tokenizer.chat_template:
        return
    if name is None:
        name = "chatml"
    key = name.strip().lower()
    if key not in TEMPLATES:
        raise ConfigError(
            f"template={name!r} is not built in and the tokenizer has no chat template of its own; "
            f"use one of: {', '.join(TEMPLATES)}"
        )
    tokenizer.chat_template = TEMPLATES[key]
