"""alpaca / sharegpt / openai rows, and TRL's formats (``detect.py``), -> tunekit's canonical rows.

Canonical rows, by the kind of data a stage needs:
- ``text``:    ``{"text": str}``                                               (pt)
- ``chat``:    ``{"messages": [{"role", "content"}, ...]}``, ending on the assistant, or ``{"text": str}`` for a
               language-modelling set, trained on every token as trl's SFT does          (sft)
- ``prompt``:  ``{"messages": [...]}`` ending on the user (prompt-only) or on a reference answer  (ppo, grpo)
- ``pairwise``: ``{"prompt": [...messages ending on user], "chosen": [assistant msg], "rejected": [...]}`` (rm, dpo)
- ``unpaired``: ``{"prompt": [...], "completion": [assistant msg], "label": bool}``  (kto; a preference pair
               gives two: its chosen answer labelled true, its rejected one false)

TRL's standard (string) rows are one user turn and one assistant turn, rendered with the chat template like
LLaMA-Factory's alpaca rows (trl itself joins standard prompt and completion as raw text).

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
KINDS = ("text", "chat", "prompt", "pairwise", "unpaired")


def entry_kind(entry: DatasetEntry) -> str:
    """What an entry holds: pairwise when ``ranking``, unpaired when it has a ``kto_tag`` column (or is trl's
    unpaired), text or prompt for trl's language-modelling and prompt-only sets, else chat."""
    if entry.ranking:
        return "pairwise"
    if entry.columns.get("kto_tag") or entry.shape == "unpaired":
        return "unpaired"
    if entry.shape in ("text", "prompt"):
        return entry.shape
    return "chat"


def takes(want: str, have: str) -> bool:
    """Whether a stage that reads ``want`` rows can read a set holding ``have`` (``entry_kind``): pt reads anything;
    sft conversations or text; ppo and grpo anything with a prompt; kto unpaired rows or preference pairs."""
    return {"text": True, "chat": have in ("chat", "text"), "prompt": have != "text", "pairwise": have == "pairwise",
            "unpaired": have in ("unpaired", "pairwise")}[want]


def convert(entry: DatasetEntry, rows: list[dict], kind: str, fill: dict[str, str], key: str = "dataset") -> list[dict]:
    """Convert ``rows`` of ``entry`` to canonical rows of ``kind``. Raises ``DataError`` naming the row (and ``key``,
    the config key that names the set: ``dataset`` or ``eval_dataset``)."""
    out = []
    for number, row in enumerate(rows, 1):
        try:
            if entry.formatting == "trl" and entry.shape == "text":
                out.append(_text_row(row, kind))
                continue
            if entry.formatting == "alpaca":
                messages, extra = _alpaca(entry, row)
            elif entry.formatting == "trl":
                messages, extra = _trl(entry, row)
            else:
                messages, extra = _sharegpt(entry, row)
            if kind == "unpaired" and "chosen" in extra:  # a preference pair: a good row and a bad row
                out += [_shape(kind, messages + [extra[side]], {**extra, "label": side == "chosen"}, fill)
                        for side in ("chosen", "rejected")]
            else:
                out.append(_shape(kind, messages, extra, fill))
        except _RowError as err:
            raise DataError(f"{key} {entry.name!r} row {number}: {err}") from None
    return out


def _text_row(row: dict, kind: str) -> dict:
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _RowError(f"the text is empty (column 'text' holds {text!r})")
    return {"text": text}


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
    turns = _get(row, cols["messages"], "messages")
    if not isinstance(turns, list):
        raise _RowError(f"column {cols['messages']!r} must be a list of messages")

    messages = [_message(t, tags) for t in turns]
    system = _get(row, cols["system"], "system", required=False)
    if system and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": str(system)})
    extra: dict = _tools(row, cols)
    if entry.ranking:
        for key in ("chosen", "rejected"):
            value = _get(row, cols[key], key)
            extra[key] = _message(value, tags) if isinstance(value, dict) else {"role": "assistant", "content": str(value)}
    if cols.get("kto_tag"):
        extra["label"] = _get(row, cols["kto_tag"], "kto_tag")
    return messages, extra


def _message(turn, tags: dict) -> dict:
    """One message in canonical form: tunekit's role, the content as text (a list of text parts joined), the
    reasoning in front as a ``<think>`` block, and an assistant's ``tool_calls`` as a ``function_call`` turn."""
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["observation_tag"]: "tool",
             tags["function_tag"]: "function_call", tags["system_tag"]: "system"}
    if not isinstance(turn, dict) or tags["role_tag"] not in turn or not (tags["content_tag"] in turn or turn.get("tool_calls")):
        raise _RowError(f"each message needs {tags['role_tag']!r} and {tags['content_tag']!r} keys")
    role = turn[tags["role_tag"]]
    if role not in roles:
        raise _RowError(f"unknown role {role!r}; expected one of: {', '.join(roles)}")
    if turn.get("tool_calls"):  # trl's / OpenAI's tool calls: the call as LLaMA-Factory's function_call JSON
        calls = [_call(c) for c in turn["tool_calls"]]
        return {"role": "function_call", "content": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)}
    content = turn.get(tags["content_tag"])
    parts = content if isinstance(content, list) else []  # content parts (text, and LLaMA-Factory's reasoning)
    if parts:
        content = "".join(_part(p) for p in parts if p.get("type", "text") == "text")
    content = str(content or "")
    reasoning = next((turn[k] for k in REASONING_KEYS if turn.get(k)), None)
    reasoning = reasoning or "".join(_part(p) for p in parts if p.get("type") == "reasoning") or None
    return {"role": roles[role], "content": with_thought(str(reasoning), content) if reasoning else content}


def _part(part) -> str:
    """The text of a content part: ``{"type": "text", "text": ...}`` (OpenAI, trl) or ``"value"`` (LLaMA-Factory v1)."""
    if not isinstance(part, dict):
        raise _RowError(f"a content part must be an object such as {{\"type\": \"text\", \"text\": ...}}, got {part!r}")
    return str(part.get("text", part.get("value", "")))


def _call(call) -> dict:
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict) or "name" not in function:
        raise _RowError(f"a tool call must be {{\"type\": \"function\", \"function\": {{\"name\": ..., \"arguments\": ...}}}}, got {call!r}")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise _RowError(f"the arguments of tool call {function['name']!r} are not JSON: {arguments!r}") from None
    return {"name": function["name"], "arguments": arguments}


# trl's conversational rows: role / content messages, with tool turns
_TRL_TAGS = {**OPENAI_TAGS, "function_tag": "function_call"}


def _trl(entry: DatasetEntry, row: dict) -> tuple[list[dict], dict]:
    """A row of one of trl's formats (``entry.shape``): the conversation up to the answer, and the answers."""
    extra: dict = _tools(row, {"tools": "tools" if "tools" in row else None})
    shape = entry.shape
    if shape == "implicit":
        chosen, rejected = _turns(row, "chosen", "assistant"), _turns(row, "rejected", "assistant")
        prompt, chosen, rejected = _shared(row, chosen, rejected)
    else:
        prompt = _turns(row, "prompt", "user")
    if shape in ("preference", "implicit"):
        if shape == "preference":
            chosen, rejected = _turns(row, "chosen", "assistant"), _turns(row, "rejected", "assistant")
        for side, answer in (("chosen", chosen), ("rejected", rejected)):
            if len(answer) != 1 or answer[0]["role"] != "assistant":
                raise _RowError(f"{side} must be one assistant answer after the prompt; it has {len(answer)} turns")
            extra[side] = answer[0]
        return prompt, extra
    if shape in ("prompt-completion", "unpaired"):
        prompt = prompt + _turns(row, "completion", "assistant")
        if shape == "unpaired":
            extra["label"] = _label(_get(row, "label", "label"), "label")
        return prompt, extra
    answer = row.get(entry.columns.get("answer") or "")  # prompt-only: a reference answer column, when there is one
    if answer not in (None, ""):
        prompt = prompt + [{"role": "assistant", "content": str(answer)}]
    return prompt, extra


def _turns(row: dict, column: str, role: str) -> list[dict]:
    """A trl column as messages: a string is one message of ``role``, a list is messages already."""
    value = _get(row, column, column)
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise _RowError(f"column {column!r} must be text or a list of messages, got {type(value).__name__}")
    return [_message(m, _TRL_TAGS) for m in value]


def _shared(row: dict, chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """An implicit prompt: the turns (or, for text, the words) the chosen and rejected share, and what follows."""
    if isinstance(row["chosen"], str):
        a, b = chosen[0]["content"], rejected[0]["content"]
        cut = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        cut = a.rfind(" ", 0, cut + 1) if cut < len(a) and not a[cut - 1: cut].isspace() else cut
        if cut <= 0 or not a[:cut].strip():
            raise _RowError("chosen and rejected share no prompt (implicit-prompt preference rows begin with the "
                            "same text); give a prompt column")
        return ([{"role": "user", "content": a[:cut].rstrip()}], [{"role": "assistant", "content": a[cut:].lstrip()}],
                [{"role": "assistant", "content": b[cut:].lstrip()}])
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise _RowError("chosen and rejected share no turns, so there is no prompt (implicit-prompt preference rows "
                        "repeat the same conversation before their answers); give a prompt column")
    return chosen[:shared], chosen[shared:], rejected[shared:]


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
    if ends_with == "either":
        return
    if ends_with == "assistant" and last not in ANSWER_ROLES:
        raise _RowError("the conversation must end with an assistant answer (the answer to learn, or to score "
                        "predictions against); give every row its answer")
    if ends_with == "user" and last not in ("user", "tool"):
        raise _RowError("a preference prompt must end with the user's turn (chosen/rejected are the answers)")


def _label(value, column: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise _RowError(f"{column} must be true or false (a boolean), got {value!r}")


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
        return {"prompt": messages[:-1], "completion": [messages[-1]], "label": _label(extra["label"], "kto_tag")}
    if kind == "prompt":  # what the policy is asked (and, where the set has one, the reference answer)
        if "chosen" in extra:
            messages = messages + [{"role": "assistant", "content": _fill(extra["chosen"]["content"], fill)}]
        _check_order(messages, "either")
        return {"messages": messages}
    raise ValueError(kind)
