"""Tool calling: a row's ``tools`` and its function calls, rendered as the chat template expects.

In the canonical rows (``formats.py``) a function call is a message of role ``function_call`` whose content
is the call as JSON (``{"name": ..., "arguments": {...}}``, or a list of them), an observation a message of
role ``tool``, and the row's ``tools`` the JSON list of function schemas (LLaMA-Factory's ``tools`` column).
``for_template`` turns them into what the tokenizer's template renders:

- a template that knows tools (it reads ``tools`` and ``tool_calls``, as Qwen's, Llama 3.1's and most
  recent ones do) gets ``apply_chat_template(tools=...)`` and assistant messages with ``tool_calls``;
- any other gets the tools described in the system message and each call written as the assistant's
  text (``Action:`` / ``Action Input:`` lines, the ReAct form LLaMA-Factory's default formatter uses); where it
  also refuses or drops a ``tool`` turn (Gemma, Cohere, Phi-3), an observation is the user's turn,
  ``Observation: ...``.

Function calls are the assistant's: they carry loss like its words; observations are the user's side
and carry none.
"""

from __future__ import annotations

import json

from ..templates import probed, template_text

ANSWER_ROLES = ("assistant", "function_call")  # the turns the model writes (and is trained on)


def knows_tools(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders ``tools``, assistant ``tool_calls`` and tool messages itself
    (trl's ``supports_tool_calling``: the call's name and arguments and the tool's answer all appear)."""
    return "tool_calls" in template_text(tokenizer) and probed(tokenizer, "knows tools", _supports_tool_calling)


def _supports_tool_calling(tokenizer) -> bool:
    from trl.chat_template_utils import supports_tool_calling

    try:
        return bool(supports_tool_calling(tokenizer))
    except Exception:  # a template that fails on the probe in another way: it does not take tool calls
        return False


def _wants_text_arguments(tokenizer) -> bool:
    """Whether the template joins a call's ``arguments`` as text (DeepSeek-V3's): they are then given as JSON text."""
    call = {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    try:
        tokenizer.apply_chat_template([{"role": "user", "content": "u"},
                                       {"role": "assistant", "content": "", "tool_calls": [call]}], tokenize=False)
        return False
    except TypeError:
        return True
    except Exception:
        return False


def refuses_tool_role(tokenizer) -> bool:
    """Whether the template rejects a ``tool`` message (Gemma's and Cohere's: roles must alternate) or drops it
    (Phi-3's); their observations are then the user's turn, ``Observation: ...``."""
    return probed(tokenizer, "refuses tool role", _refuses_tool_role)


def _refuses_tool_role(tokenizer) -> bool:
    probe = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"},
             {"role": "tool", "content": "tool_result_7f3a"}, {"role": "assistant", "content": "b"}]
    try:
        return "tool_result_7f3a" not in tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception:  # jinja's raise_exception, whatever its words
        return True


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
                as_text = probed(tokenizer, "text arguments", _wants_text_arguments)
                calls = [{"type": "function", "function": {"name": c.get("name"), "arguments": json.dumps(
                    c.get("arguments", {}), ensure_ascii=False) if as_text else c.get("arguments", {})}}
                         for c in _calls(m["content"])]
                out.append({"role": "assistant", "content": "", "tool_calls": calls})
            else:
                out.append(m)
        return out, ({"tools": [{"type": "function", "function": s} for s in schemas]} if schemas else {})
    observation = "user" if refuses_tool_role(tokenizer) else "tool"
    out = [{"role": "assistant", "content": _as_text(_calls(m["content"]))} if m["role"] == "function_call"
           else {"role": "user", "content": f"Observation: {m['content']}"} if m["role"] == "tool" and observation == "user"
           else m for m in messages]
    if schemas:
        described = _describe(schemas)
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": out[0]["content"] + "\n\n" + described}
        else:
            out.insert(0, {"role": "system", "content": described})
    return out, {}
