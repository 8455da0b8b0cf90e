"""Tool calling: a row's ``tools`` and its function calls, rendered as the chat template expects.

In the canonical rows (``formats.py``) a function call is a message of role ``function_call`` whose content
is the call as JSON (``{"name": ..., "arguments": {...}}``, or a list of them), an observation a message of
role ``tool``, and the row's ``tools`` the JSON list of function schemas (LLaMA-Factory's ``tools`` column).
``for_template`` turns them into what the tokenizer's template renders:

- a template that knows tools (it reads ``tools`` and ``tool_calls``, as Qwen's, Llama 3.1's and most
  recent ones do) gets ``apply_chat_template(tools=...)`` and assistant messages with ``tool_calls``;
- any other gets the tools described in the system message and each call written as the assistant's
  text (``Action:`` / ``Action Input:`` lines, the ReAct form LLaMA-Factory's default formatter uses).

Function calls are the assistant's: they carry loss like its words; observations are the user's side
and carry none.
"""

from __future__ import annotations

import json

ANSWER_ROLES = ("assistant", "function_call")  # the turns the model writes (and is trained on)


def knows_tools(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders ``tools`` and assistant ``tool_calls`` itself."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    return "tools" in template and "tool_calls" in template


def parse_tools(tools) -> list[dict]:
    """The function schemas of a row: its ``tools`` column, as JSON text or already a list."""
    if tools in (None, "", []):
        return []
    value = json.loads(tools) if isinstance(tools, str) else tools
    value = value if isinstance(value, list) else [value]
    return [t.get("function", t) if isinstance(t, dict) and t.get("type") == "function" else t for t in value]


def _calls(content: str) -> list[dict]:
    value = json.loads(content)
    return value if isinstance(value, list) else [value]


def _describe(tools: list[dict]) -> str:
    lines = ["You can call these tools:"]
    for tool in tools:
        lines.append(f"- {tool.get('name')}: {tool.get('description', '')}".rstrip(": "))
        if tool.get("parameters"):
            lines.append(f"  parameters (JSON schema): {json.dumps(tool['parameters'], ensure_ascii=False)}")
    lines.append("To call one, answer with the lines 'Action: <tool name>' and 'Action Input: <arguments as "
                 "JSON>'; its result comes back as the next message.")
    return "\n".join(lines)


def _as_text(calls: list[dict]) -> str:
    return "\n".join(f"Action: {c.get('name')}\nAction Input: {json.dumps(c.get('arguments', {}), ensure_ascii=False)}"
                     for c in calls)


def for_template(tokenizer, messages: list[dict], tools=None) -> tuple[list[dict], dict]:
    """``messages`` (canonical, with ``function_call`` turns) as the template takes them, and the keywords
    for ``apply_chat_template`` (``tools`` where the template knows them)."""
    schemas = parse_tools(tools)
    has_calls = any(m["role"] == "function_call" for m in messages)
    if not schemas and not has_calls:
        return messages, {}
    if knows_tools(tokenizer):
        out = []
        for m in messages:
            if m["role"] == "function_call":
                calls = [{"type": "function", "function": {"name": c.get("name"), "arguments": c.get("arguments", {})}}
                         for c in _calls(m["content"])]
                out.append({"role": "assistant", "content": "", "tool_calls": calls})
            else:
                out.append(m)
        return out, ({"tools": schemas} if schemas else {})
    out = [{"role": "assistant", "content": _as_text(_calls(m["content"]))} if m["role"] == "function_call" else m
           for m in messages]
    if schemas:
        described = _describe(schemas)
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": out[0]["content"] + "\n\n" + described}
        else:
            out.insert(0, {"role": "system", "content": described})
    return out, {}
