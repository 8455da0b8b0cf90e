"""alpaca / sharegpt / openai rows -> tunekit's canonical rows.

Canonical rows, by the kind of data a stage needs:
- ``text``:    ``{"text": str}``                                               (pt)
- ``chat``:    ``{"messages": [{"role", "content"}, ...]}``, ending on the assistant  (sft, ppo prompts)
- ``pairwise``: ``{"prompt": [...messages ending on user], "chosen": [assistant msg], "rejected": [...]}`` (rm, dpo)
- ``unpaired``: ``{"prompt": [...], "completion": [assistant msg], "label": bool}``  (kto)

An answer's reasoning (a ``reasoning_content``, ``thinking`` or ``reasoning`` key of an openai or sharegpt message)
goes in front of its content as a ``<think>`` block, the form LLaMA-Factory's data has it in (``rendering.py``
passes it to each template as the template expects).

Roles are ``system``, ``user``, ``assistant``, and for tool calling ``function_call`` (the assistant's
call, JSON) and ``tool`` (an observation, on the user's side); a ``tools`` column becomes the row's
``tools`` (``tools.py`` renders them as the chat template expects). ``{{name}}`` and ``{{author}}`` are filled from the
config keys ``identity_name`` and ``identity_author``.
"""

from __future__ import annotations

import json

from ..errors import DataError
from .registry import DatasetEntry
from ..rendering import with_thought
from .tools import ANSWER_ROLES

REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")  # an answer's reasoning beside its content (trl, OpenAI)

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": None, "system": None,
                  "tools": None, "chosen": "chosen", "rejected": "rejected", "kto_tag": None}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": None, "tools": None, "chosen": "chosen",
                    "rejected": "rejected", "kto_tag": None}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "function_tag": "function", "system_tag": "system"}
KINDS = ("text", "chat", "pairwise", "unpaired")


def entry_kind(entry: DatasetEntry) -> str:
    """What an entry holds: pairwise when ``ranking``, unpaired when it has a ``kto_tag`` column, else chat."""
    if entry.ranking:
        return "pairwise"
    if entry.columns.get("kto_tag"):
        return "unpaired"
    return "chat"


def convert(entry: DatasetEntry, rows: list[dict], kind: str, fill: dict[str, str], key: str = "dataset") -> list[dict]:
    """Convert ``rows`` of ``entry`` to canonical rows of ``kind``. Raises ``DataError`` naming the row (and ``key``,
    the config key that names the set: ``dataset`` or ``eval_dataset``)."""
    out = []
    for number, row in enumerate(rows, 1):
        try:
            if entry.formatting == "alpaca":
                messages, extra = _alpaca(entry, row)
            else:
                messages, extra = _sharegpt(entry, row)
            out.append(_shape(kind, messages, extra, fill))
        except _RowError as err:
            raise DataError(f"{key} {entry.name!r} row {number}: {err}") from None
    return out


class _RowError(Exception):
    pass


def _get(row: dict, column: str | None, key: str, required: bool = True):
    if column is None:
        return None
    if column not in row or row[column] is None:
        if required:
            raise _RowError(f"missing column {column!r} ({key}); columns found: {', '.join(map(str, row)) or 'none'}")
        return None
    return row[column]


def _alpaca(entry: DatasetEntry, row: dict) -> tuple[list[dict], dict]:
    cols = {**ALPACA_COLUMNS, **entry.columns}
    messages = []
    system = _get(row, cols["system"], "system", required=False)
    if system:
        messages.append({"role": "system", "content": str(system)})
    for pair in _get(row, cols["history"], "history", required=False) or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _RowError("history must be a list of [question, answer] pairs")
        messages += [{"role": "user", "content": str(pair[0])}, {"role": "assistant", "content": str(pair[1])}]
    prompt = str(_get(row, cols["prompt"], "prompt"))
    query = _get(row, cols["query"], "query", required=False)
    messages.append({"role": "user", "content": f"{prompt}\n{query}" if query else prompt})
    extra: dict = _tools(row, cols)
    if entry.ranking:
        extra["chosen"] = {"role": "assistant", "content": str(_get(row, cols["chosen"], "chosen"))}
        extra["rejected"] = {"role": "assistant", "content": str(_get(row, cols["rejected"], "rejected"))}
    else:
        response = _get(row, cols["response"], "response", required=False)
        if response is not None and str(response) != "":
            messages.append({"role": "assistant", "content": str(response)})
    if cols.get("kto_tag"):
        extra["label"] = _get(row, cols["kto_tag"], "kto_tag")
    return messages, extra


def _sharegpt(entry: DatasetEntry, row: dict) -> tuple[list[dict], dict]:
    cols = {**SHAREGPT_COLUMNS, **entry.columns}
    tags = {**(OPENAI_TAGS if entry.formatting == "openai" else SHAREGPT_TAGS), **entry.tags}
    if entry.formatting == "openai" and "messages" not in entry.columns:
        cols["messages"] = "messages"
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["observation_tag"]: "tool",
             tags["function_tag"]: "function_call", tags["system_tag"]: "system"}
    turns = _get(row, cols["messages"], "messages")
    if not isinstance(turns, list):
        raise _RowError(f"column {cols['messages']!r} must be a list of messages")

    def message(turn) -> dict:
        if not isinstance(turn, dict) or tags["role_tag"] not in turn or tags["content_tag"] not in turn:
            raise _RowError(f"each message needs {tags['role_tag']!r} and {tags['content_tag']!r} keys")
        role = turn[tags["role_tag"]]
        if role not in roles:
            raise _RowError(f"unknown role {role!r}; expected one of: {', '.join(roles)}")
        content = str(turn[tags["content_tag"]] or "")
        reasoning = next((turn[k] for k in REASONING_KEYS if turn.get(k)), None)
        return {"role": roles[role], "content": with_thought(str(reasoning), content) if reasoning else content}

    messages = [message(t) for t in turns]
    system = _get(row, cols["system"], "system", required=False)
    if system and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": str(system)})
    extra: dict = _tools(row, cols)
    if entry.ranking:
        for key in ("chosen", "rejected"):
            value = _get(row, cols[key], key)
            extra[key] = message(value) if isinstance(value, dict) else {"role": "assistant", "content": str(value)}
    if cols.get("kto_tag"):
        extra["label"] = _get(row, cols["kto_tag"], "kto_tag")
    return messages, extra


def _tools(row: dict, cols: dict) -> dict:
    """The row's ``tools`` (JSON text of function schemas), when the entry maps a ``tools`` column."""
    if not cols.get("tools"):
        return {}
    tools = _get(row, cols["tools"], "tools", required=False)
    if tools in (None, ""):
        return {"tools": None}
    if not isinstance(tools, str):
        tools = json.dumps(tools, ensure_ascii=False)
    try:
        json.loads(tools)
    except json.JSONDecodeError as err:
        raise _RowError(f"tools must be JSON (a list of function schemas): {err.msg}") from None
    return {"tools": tools}


def _check_order(messages: list[dict], ends_with: str) -> None:
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in body):
        raise _RowError("a system message may only come first")
    for index, msg in enumerate(body):
        expected = ("user", "tool") if index % 2 == 0 else ANSWER_ROLES
        if msg["role"] not in expected:
            raise _RowError(
                f"roles out of order at message {index + 1}: got {msg['role']!r}, expected {' or '.join(expected)} "
                "(conversations alternate user, assistant, ...)"
            )
    if not body:
        raise _RowError("the conversation is empty")
    last = body[-1]["role"]
    if ends_with == "assistant" and last not in ANSWER_ROLES:
        raise _RowError("the conversation must end with an assistant answer (the answer to learn, or to score "
                        "predictions against); give every row its answer")
    if ends_with == "user" and last not in ("user", "tool"):
        raise _RowError("a preference prompt must end with the user's turn (chosen/rejected are the answers)")


def _label(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise _RowError(f"kto_tag must be true or false, got {value!r}")


def _fill(text: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _shape(kind: str, messages: list[dict], extra: dict, fill: dict[str, str]) -> dict:
    messages = [{"role": m["role"], "content": _fill(m["content"], fill)} for m in messages]
    if kind != "chat":  # only sft's rows render tool calls (tools.py); elsewhere a call is the assistant's text
        messages = [{**m, "role": "assistant"} if m["role"] == "function_call" else m for m in messages]
    if kind == "text":
        text = "\n".join(m["content"] for m in messages if m["role"] != "system")
        if not text.strip():
            raise _RowError("the text is empty")
        return {"text": text}
    if kind == "chat":
        _check_order(messages, "assistant")
        return {"messages": messages, **({"tools": extra["tools"]} if "tools" in extra else {})}
    if kind == "pairwise":
        if "chosen" not in extra:
            raise _RowError("not a preference row: set ranking: true and chosen/rejected columns in dataset_info.json")
        _check_order(messages, "user")
        return {"prompt": messages,
                "chosen": [{"role": "assistant", "content": _fill(extra["chosen"]["content"], fill)}],
                "rejected": [{"role": "assistant", "content": _fill(extra["rejected"]["content"], fill)}]}
    if kind == "unpaired":
        if "label" not in extra:
            raise _RowError("not a KTO row: map a kto_tag column in dataset_info.json")
        _check_order(messages, "assistant")
        return {"prompt": messages[:-1], "completion": [messages[-1]], "label": _label(extra["label"])}
    raise ValueError(kind)
