"""A set's format, found from its columns when no ``dataset_info.json`` entry says it (files, hub ids, rows in memory).

LLaMA-Factory's shapes with their default column names, then TRL's documented formats
(``docs/source/dataset_formats.md`` in huggingface/trl), each standard (strings) or conversational (messages):

==========================  ==========================================  ===============================
columns                     read as                                     stages that take it
==========================  ==========================================  ===============================
instruction (input, output)  alpaca (chosen/rejected: preference;       all (as its shape allows)
                             kto_tag: unpaired)
conversations               sharegpt (from/value or role/content)       all (as its shape allows)
messages                    openai = trl conversational language model  pt, sft, ppo, grpo (+ chosen/rejected: rm, dpo)
text                        trl language modelling                      pt, sft
prompt                      trl prompt-only (answers: solution/answer)  pt, ppo, grpo
prompt, completion          trl prompt-completion                       pt, sft, ppo, grpo
prompt, chosen, rejected    trl preference, explicit prompt             rm, dpo, kto (two rows), ppo, grpo
chosen, rejected            trl preference, implicit prompt (shared)    rm, dpo, kto (two rows), ppo, grpo
prompt, completion, label   trl unpaired preference                     kto, ppo, grpo
==========================  ==========================================  ===============================
"""

from __future__ import annotations

import dataclasses

from ..errors import DataError
from .registry import DatasetEntry

# what each kind of stage takes, in words (for the message when nothing matches)
TAKES = {
    "text": "any format (text, messages, prompt/completion, alpaca, sharegpt)",
    "chat": "language modelling (text, or messages), prompt + completion, alpaca (instruction, output) or sharegpt "
            "(conversations)",
    "prompt": "anything with a prompt: prompt, prompt + completion, messages, alpaca, sharegpt, or a preference set",
    "pairwise": "preference: prompt + chosen + rejected, chosen + rejected (implicit prompt), or alpaca / sharegpt "
                "with chosen and rejected",
    "unpaired": "unpaired preference (prompt + completion + label), a preference set (each pair a good and a bad "
                "row), or alpaca / sharegpt with kto_tag",
}
_PROMPT_WORDS = ("instruction", "question", "query", "prompt", "problem", "input", "q", "user", "source")
_ANSWER_WORDS = ("output", "answer", "response", "completion", "solution", "target", "a", "assistant", "reply")
ANSWER_COLUMNS = ("solution", "answer")  # a prompt-only set's reference answers (what grpo's rewards check)


def detect(entry: DatasetEntry, rows: list[dict], kind: str) -> tuple[DatasetEntry, str, str]:
    """(the entry with its format filled in, the format in words, a note on how it is read: "" or a clause) for
    ``rows`` of an unregistered set."""
    columns = list(dict.fromkeys(key for row in rows[:1000] for key in row))
    have = set(columns)
    found = {c: c for c in ("system", "tools", "chosen", "rejected", "kto_tag", "history") if c in have}
    if "label" in have and "kto_tag" not in have:  # LLaMA-Factory's kto_en_demo: messages and a boolean label
        found["kto_tag"] = "label"
    if "conversations" in have or ("messages" in have and "prompt" not in have):
        column = "conversations" if "conversations" in have else "messages"
        tags = _tags(rows, column)
        formatting = "sharegpt" if column == "conversations" else "openai"
        return _filled(entry, formatting, {"messages": column, **found}, tags), _words(formatting, found, column), ""
    if "instruction" in have:
        cols = {"prompt": "instruction", **{k: v for k, v in (("query", "input"), ("response", "output")) if v in have}}
        return _filled(entry, "alpaca", {**cols, **found}), _words("alpaca", found, "instruction, input, output"), ""
    conversational = any(isinstance(rows[0].get(c), list) for c in ("prompt", "completion", "chosen", "text"))
    style = "conversational" if conversational else "standard"
    if {"chosen", "rejected"} <= have:
        if "prompt" in have:
            return _trl(entry, "preference"), f"trl preference ({style}), explicit prompt", ""
        shared = "turns the chosen and rejected conversations" if conversational else "text the chosen and rejected"
        return _trl(entry, "implicit"), f"trl preference ({style}), implicit prompt", f"the prompt is the {shared} share"
    if {"prompt", "completion", "label"} <= have:
        return _trl(entry, "unpaired"), f"trl unpaired preference ({style})", ""
    if {"prompt", "completion"} <= have:
        return _trl(entry, "prompt-completion"), f"trl prompt-completion ({style})", ""
    if "prompt" in have:
        answers = next((c for c in ANSWER_COLUMNS if c in have), None)
        said = f"the {answers!r} column is the reference answer" if answers else ""
        return _trl(entry, "prompt", {"answer": answers} if answers else {}), f"trl prompt-only ({style})", said
    if "text" in have:
        return _trl(entry, "text"), "trl language modelling (text)", ""
    raise DataError(_no_format(entry, rows, columns, kind))


def _filled(entry: DatasetEntry, formatting: str, columns: dict, tags: dict | None = None) -> DatasetEntry:
    return dataclasses.replace(entry, formatting=formatting, columns=columns, tags=tags or {},
                               ranking="chosen" in columns and "rejected" in columns)


def _trl(entry: DatasetEntry, shape: str, columns: dict | None = None) -> DatasetEntry:
    return dataclasses.replace(entry, formatting="trl", shape=shape, columns=columns or {},
                               ranking=shape in ("preference", "implicit"))


def _words(formatting: str, found: dict, main: str) -> str:
    extra = [w for k, w in (("chosen", "preference: chosen, rejected"), ("kto_tag", f"unpaired: {found.get('kto_tag')}"),
                            ("tools", "tools")) if k in found]
    return f"{formatting} ({main}{''.join('; ' + w for w in extra)})"


def _tags(rows: list[dict], column: str) -> dict:
    """The message keys and role names a sharegpt / openai set uses (from/value or role/content; human/gpt or
    user/assistant), from its first rows."""
    messages = [m for row in rows[:100] if isinstance(row.get(column), list) for m in row[column] if isinstance(m, dict)]
    role, content = ("from", "value") if any("from" in m for m in messages) else ("role", "content")
    roles = {m.get(role) for m in messages}
    sharegpt_roles = bool(roles & {"human", "gpt", "observation", "function_call"})
    return {"role_tag": role, "content_tag": content,
            "user_tag": "human" if sharegpt_roles else "user", "assistant_tag": "gpt" if sharegpt_roles else "assistant",
            "observation_tag": "observation" if sharegpt_roles else "tool",
            "function_tag": "function_call" if sharegpt_roles else "function", "system_tag": "system"}


def _no_format(entry: DatasetEntry, rows: list[dict], columns: list[str], kind: str) -> str:
    first = rows[0] if rows else {}
    lists = [c for c in columns if isinstance(first.get(c), list) and first[c] and isinstance(first[c][0], dict)]
    texts = [c for c in columns if isinstance(first.get(c), str)]
    if lists:
        closest = f'sharegpt, with "formatting": "sharegpt", "columns": {{"messages": "{lists[0]}"}}'
    elif len(texts) >= 2:
        prompt = next((c for c in texts if c.lower() in _PROMPT_WORDS), texts[0])
        answer = next((c for c in texts if c.lower() in _ANSWER_WORDS and c != prompt), next(c for c in texts if c != prompt))
        closest = f'alpaca, with "columns": {{"prompt": "{prompt}", "response": "{answer}"}}'
    else:
        closest = None
    hint = (f"; closest: {closest} in its dataset_info.json entry" if closest
            else "; describe it with an entry in dataset_info.json (formatting and columns)")
    return (f"dataset {entry.name!r}: its columns ({', '.join(map(str, columns)) or 'none'}) match no known format; "
            f"this stage takes {TAKES[kind]}{hint}")
