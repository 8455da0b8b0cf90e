"""One rendering: every conversation becomes text and tokens here, for every stage, generation and evaluation.

The tokenizer's chat template is the model's real format, and it is rendered as the model will see it:

- **Train as you chat.** The tokens before the last answer of a row are exactly what
  ``apply_chat_template(messages[:-1], add_generation_prompt=True)`` gives: the prompt the model is shown at
  inference. The answer is what the template renders after that prompt (its head, such as Qwen3's empty
  ``<think>`` block, its text and its end-of-turn tokens). A generation prompt that opens a thought the
  conversation does not render (DeepSeek-R1's ``<think>\\n``) gets the answer's reasoning and the closing tag.
- **Masks for any template.** Earlier answers are found in that one rendering rather than by rendering the
  conversation turn by turn (which templates that drop earlier reasoning or mark the last turn break): an answer
  starts where its own generation prompt ends and ends after its text and the end-of-turn tokens that follow.
- **Reasoning.** An answer's reasoning is a ``<think>...</think>`` block at the start of its content (the
  ``reasoning_content`` / ``thinking`` fields of the openai and sharegpt formats are read into it); it is passed
  as the template expects (``reasoning_content``, ``thinking``, or the text itself). ``enable_thinking: false``
  drops it (and the template's own switch turns thinking off); ``preserve_thinking`` is passed to templates that
  read it. For LLaMA-Factory's reasoning template names (``qwen3``, ``deepseekr1``, ...) every earlier answer gets a
  thought block as LLaMA-Factory writes it: the empty one, trained, or in the prompt with ``enable_thinking: false``.
- **Rows a template refuses.** A template without a system role (Gemma) gets the system text at the start of
  the first user turn, with one warning (as LLaMA-Factory does); any other refusal is a one-line ``DataError``
  naming the template and the fix, never jinja's traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import DataError, warn
from .templates import Style, probed, template_text

THOUGHT = ("<think>\n", "\n</think>\n\n")  # how an answer's reasoning is written (LLaMA-Factory's thought words)
_LEADING_THOUGHT = re.compile(r"^\s*<think>(.*?)</think>\s*", re.S)
_MARK = "\ue000tunekit\ue001"  # a placeholder answer: no whitespace, nothing a template trims or splits
# LLaMA-Factory's template names whose ReasoningTemplate writes a thought block (empty if need be) before every
# answer, with the thought words above.
LLAMAFACTORY_REASONING = ("deepseekr1", "ernie_vl", "glm4_moe", "glm4v", "glm4_5v", "glmz1", "keye_vl", "mimo",
                          "mimo_vl", "minimax2", "qwen3", "qwen3_5", "qwen3_6", "qwen3_omni", "qwen3_vl", "youtu")


def style_of(tokenizer) -> Style:
    return getattr(tokenizer, "tunekit_style", None) or Style()


def template_label(tokenizer) -> str:
    """The template's name for a message: trl's name for it where trl ships it, else the ``template`` key."""
    text = template_text(tokenizer)
    for name, known in _trl_templates().items():
        if text.endswith(known):  # a template with thinking turned off starts with one line more
            return f"the {name} chat template"
    name = style_of(tokenizer).template
    return f"the {name} chat template" if name else "the tokenizer's chat template"


@lru_cache(maxsize=1)
def _trl_templates() -> dict[str, str]:
    try:
        import trl
    except ImportError:
        return {}
    folder = Path(trl.__file__).parent / "chat_templates"
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.jinja"))
            if not p.stem.endswith("_training")}


def split_thought(content: str) -> tuple[str | None, str]:
    """(the reasoning of an answer, or None; the answer without it): a leading ``<think>...</think>`` block."""
    match = _LEADING_THOUGHT.match(content or "")
    if not match:
        return None, content
    return match.group(1).strip("\n"), content[match.end():]


def reasoning_of(message: dict) -> str | None:
    """The reasoning of a prepared answer, wherever ``prepare`` put it."""
    return message.get("reasoning_content") or message.get("thinking") or split_thought(message.get("content") or "")[0]


def with_thought(reasoning: str | None, content: str) -> str:
    """An answer's text with its reasoning in front, as a ``<think>`` block (as LLaMA-Factory writes it)."""
    return f"{THOUGHT[0]}{reasoning.strip(chr(10))}{THOUGHT[1]}{content}" if reasoning else content


# ---------------------------------------------------------------------------------------------
# messages as the template takes them
# ---------------------------------------------------------------------------------------------


def prepare(tokenizer, messages: list[dict], tools=None) -> tuple[list[dict], dict]:
    """``messages`` (canonical rows) as the template takes them, and the keywords for ``apply_chat_template``:
    tools and function calls (``data/tools.py``), reasoning, and the system turn folded where it is refused."""
    from .data.tools import for_template

    messages, extra = for_template(tokenizer, list(messages), tools)
    style, text = style_of(tokenizer), template_text(tokenizer)
    out = []
    for message in messages:
        if message["role"] == "assistant" and isinstance(message.get("content"), str):
            reasoning, content = split_thought(message["content"])
            if not style.enable_thinking:
                reasoning = None
            message = {**message, "content": content}
            if reasoning and "reasoning_content" in text:
                message["reasoning_content"] = reasoning
            elif reasoning and "message.thinking" in text or reasoning and "message['thinking']" in text:
                message["thinking"] = reasoning
            elif reasoning:
                message["content"] = with_thought(reasoning, content)
        out.append(message)
    if out and out[0]["role"] == "system" and refuses_system(tokenizer):
        out = fold_system(out)
        if not getattr(tokenizer, "tunekit_folded", False):
            tokenizer.tunekit_folded = True
            warn(f"{template_label(tokenizer)} has no system role: each row's system text is put at the start of "
                 "its first user turn (as LLaMA-Factory does)")
    if style.preserve_thinking and "preserve_thinking" in text:
        extra = {**extra, "preserve_thinking": True}
    return out, extra


def fold_system(messages: list[dict]) -> list[dict]:
    """The system text at the start of the first user turn, separated by a blank line."""
    system, rest = messages[0]["content"], list(messages[1:])
    for index, message in enumerate(rest):
        if message["role"] == "user":
            rest[index] = {**message, "content": f"{system}\n\n{message['content']}"}
            return rest
    return [{"role": "user", "content": system}, *rest]


def refuses_system(tokenizer) -> bool:
    """Whether the template rejects a system message (Gemma's: 'System role not supported')."""
    return probed(tokenizer, "refuses system", _refuses_system)


def _refuses_system(tokenizer) -> bool:
    try:
        tokenizer.apply_chat_template([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                      tokenize=False, add_generation_prompt=True)
        return False
    except Exception as err:  # jinja's TemplateError from raise_exception, or any failure on a system turn
        return "system" in str(err).lower()


def _render(tokenizer, messages: list[dict], extra: dict, generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                             **extra)
    except Exception as err:
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        raise DataError(f"{template_label(tokenizer)} cannot render this conversation ({reason}); fix the row (roles "
                        "in the order the template expects, every message with its keys) or set template to one "
                        "that takes it") from None


def render(tokenizer, messages: list[dict], tools=None, generation_prompt: bool = False) -> str:
    """The template's text of ``messages`` (canonical rows)."""
    messages, extra = prepare(tokenizer, messages, tools)
    return _render(tokenizer, messages, extra, generation_prompt)


def token_ids(tokenizer, text: str) -> list[int]:
    """The ids of ``text`` alone (no special tokens added: a rendered template has its own)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def prompt_text(tokenizer, messages: list[dict], tools=None) -> str:
    """What a model is shown to answer ``messages``: the template with its generation prompt."""
    return render(tokenizer, messages, tools, generation_prompt=True)


def prompt_ids(tokenizer, messages: list[dict], tools=None) -> list[int]:
    """The token ids a policy continues from (``apply_chat_template(..., add_generation_prompt=True)``'s)."""
    return token_ids(tokenizer, prompt_text(tokenizer, messages, tools))


# ---------------------------------------------------------------------------------------------
# a conversation as tokens, with what is trained
# ---------------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """A conversation as tokens: ``ids``, ``answer`` (the answers' tokens: what the model writes) and ``reasoning``
    (their thoughts); ``turns`` cuts it into (prompt ids, answer ids) pairs, one per answer."""

    ids: list[int]
    answer: list[bool]
    reasoning: list[bool]

    def turns(self) -> list[tuple[list[int], list[int], list[bool]]]:
        """(prompt ids, answer ids, which answer ids are reasoning), one per answer, in order."""
        pieces: list[tuple[list[int], list[int], list[bool]]] = []
        source: list[int] = []
        target: list[int] = []
        thought: list[bool] = []
        for token, trained, reasoning in zip(self.ids, self.answer, self.reasoning):
            if not trained and target:
                pieces.append((source, target, thought))
                source, target, thought = [], [], []
            if trained:
                target.append(token)
                thought.append(reasoning)
            else:
                source.append(token)
        if target or not pieces:
            pieces.append((source, target, thought))
        else:  # text after the last answer: context, kept with it
            last_source, last_target, last_thought = pieces[-1]
            pieces[-1] = (last_source, last_target + source, last_thought + [False] * len(source))
        return pieces


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def end_of_turn(tokenizer, extra: dict) -> tuple[str, bool]:
    """(the text a template writes after an earlier answer's text: ``<|im_end|>\n``, ``<|eot_id|>``, ...; whether
    it writes anything after the last answer). GLM's templates write nothing there: the end-of-sequence token is
    added (LLaMA-Factory's ``efficient_eos``)."""
    return probed(tokenizer, f"end of turn {sorted(extra)}", lambda _: _end_of_turn(tokenizer, extra))


def _end_of_turn(tokenizer, extra: dict) -> tuple[str, bool]:
    probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": _MARK}]
    try:
        between = _render(tokenizer, [*probe, {"role": "user", "content": "b"}], extra, False)
        last = _render(tokenizer, probe, extra, False)
        between, last = between[between.index(_MARK) + len(_MARK):], last[last.index(_MARK) + len(_MARK):]
    except (DataError, ValueError):
        between = last = ""
    common = _common(between, last)  # cut back to a token boundary: '<|end|>\n<|' is no end of a turn
    text = between[: max([0] + [start for _, start in _offsets(tokenizer, between) if start <= common]
                         if common < len(between) else [common])]
    first = _special_at(tokenizer, between, 0)  # gpt-oss ends an earlier answer with <|end|>, the last with <|return|>
    if first and len(first) > len(text):
        text = first
    return text, bool(last.strip())


def _special_at(tokenizer, text: str, position: int) -> str:
    """The special or added token that ``text`` has at ``position`` (the longest), or ""."""
    specials = probed(tokenizer, "specials", lambda t: sorted(
        {s for s in [*getattr(t, "all_special_tokens", []), *t.get_added_vocab()] if s}, key=len, reverse=True))
    return next((token for token in specials if text.startswith(token, position)), "")


def _continuation(prefix: str, full: str, reasoning: str | None, history) -> str:
    """The last answer's text after ``prefix`` (its generation prompt), from the full rendering ``full``;
    ``history()``: the conversation before the last answer rendered without the generation prompt."""
    if full.startswith(prefix):
        return full[len(prefix):]
    at = _common(prefix, full)
    if at < _common(prefix, history()):
        raise ValueError("the template renders the conversation before the last answer differently with it")
    opened, rest = prefix[at:], full[at:]
    if "<think>" in opened and "</think>" not in rest:  # DeepSeek-R1: the prompt opens a thought; the answer closes it
        return (reasoning.strip("\n") if reasoning else "") + THOUGHT[1] + rest.lstrip("\n")
    return rest


def encode(tokenizer, messages: list[dict], tools=None, mask_history: bool = False,
           history_thoughts: bool = True) -> Encoded:
    """``messages`` (ending with an answer) as tokens, with each answer's tokens marked. ``history_thoughts``:
    LLaMA-Factory's thought block before earlier answers, where the ``template`` key names one of its reasoning
    templates (not with ``mask_history``, where LLaMA-Factory drops earlier reasoning)."""
    prefix, continuation, spans, thoughts, reasoning = _layout(tokenizer, messages, tools, mask_history,
                                                               history_thoughts)
    prompt = _offsets(tokenizer, prefix)
    answer = token_ids(tokenizer, continuation)
    ids = [t for t, _ in prompt] + answer
    trained = [any(s <= start < e for s, e in spans) for _, start in prompt] + [True] * len(answer)
    marks = [any(s <= start < e for s, e in thoughts) for _, start in prompt]
    marks += _answer_reasoning(tokenizer, continuation, answer, reasoning)
    return Encoded(ids, trained, marks)


def _layout(tokenizer, messages, tools, mask_history, history_thoughts) -> tuple[str, str, list, list, str | None]:
    """(the text before the last answer, the last answer's text, the earlier answers' spans in the first, the
    spans of the reasoning the first holds, the last answer's reasoning)."""
    prepared, extra = prepare(tokenizer, messages, tools)
    answers = [i for i, m in enumerate(prepared) if m["role"] == "assistant"]
    if not answers:
        raise DataError("the conversation has no answer to train on; end each row with the assistant's answer")
    last = answers[-1]
    prefix = _render(tokenizer, prepared[:last], extra, True)
    full = _render(tokenizer, prepared[: last + 1], extra, False)
    try:
        continuation = _continuation(prefix, full, reasoning_of(prepared[last]),
                                     lambda: _render(tokenizer, prepared[:last], extra, False) if last else "")
        spans = _history_spans(tokenizer, prepared, answers[:-1], prefix, extra)
    except ValueError as err:
        raise DataError(f"{template_label(tokenizer)}: {err}; set template to a format that renders it "
                        "(or report the model's template)") from None
    if not end_of_turn(tokenizer, extra)[1] and tokenizer.eos_token and not continuation.endswith(tokenizer.eos_token):
        continuation += tokenizer.eos_token  # a template that ends no answer: the model must still learn to stop
    inserts = _thought_inserts(tokenizer, prepared, spans, prefix, mask_history) if history_thoughts else []
    prefix, spans, thoughts = _apply_inserts(prefix, spans, inserts)
    return (prefix, continuation, spans, thoughts + _reasoning_spans(prefix, spans),
            reasoning_of(prepared[last]))


def _history_spans(tokenizer, prepared: list[dict], answers: list[int], prefix: str, extra: dict) -> list[tuple]:
    """The (start, end) of each earlier answer in ``prefix``: from the end of its own generation prompt to the end
    of its text (found by rendering a placeholder in its place) and the end-of-turn text after it."""
    eot = end_of_turn(tokenizer, extra)[0] if answers else ""
    spans, done = [], 0
    for index in answers:
        own_prompt = _render(tokenizer, prepared[:index], extra, True)
        start = _common(prefix, own_prompt)
        message = prepared[index]
        try:
            stand_in = _render(tokenizer, [*prepared[:index], {"role": "assistant", "content": _MARK},
                                           *_until_last_answer(prepared, index)], extra, True)
        except DataError:  # a template that checks a tool call comes before each tool message (gpt-oss)
            stand_in = ""
        after = stand_in[stand_in.index(_MARK) + len(_MARK):] if _MARK in stand_in else None
        if after is not None and prefix.endswith(after) and len(prefix) - len(after) >= start:
            end = len(prefix) - len(after)
        elif message.get("tool_calls"):  # the call's last word, then the token that closes the call
            end = _after_call(tokenizer, prefix, start, message["tool_calls"])
        else:  # the template rewrites around the answer: find its text
            text = split_thought(message.get("content") or "")[1].strip()
            found = prefix.find(text, start) if text else -1
            if found < 0:
                raise ValueError(f"answer {answers.index(index) + 1} cannot be found in the rendered conversation")
            end = found + len(text)
        if prefix.startswith(eot, end):
            end += len(eot)
        if start < done or end < start:
            raise ValueError("the answers are rendered out of order")
        spans.append((start, end))
        done = end
    return spans


def _after_call(tokenizer, prefix: str, start: int, calls: list[dict]) -> int:
    """Where a rendered tool call ends: after its name and argument values, at the end of the first special token
    that follows (``</tool_call>``, ``<|call|>``, ``<tool_call|>``)."""
    at = start
    for call in calls:
        function = call.get("function", call)
        arguments = function.get("arguments") or {}
        for word in [function.get("name") or "", *(map(str, arguments.values()) if isinstance(arguments, dict) else [])]:
            found = prefix.find(word, at) if word else -1
            if found >= 0:
                at = found + len(word)
    for position in range(at, len(prefix)):
        token = _special_at(tokenizer, prefix, position)
        if token:
            return position + len(token)
    raise ValueError("a tool call's end cannot be found in the rendered conversation")


def _until_last_answer(prepared: list[dict], index: int) -> list[dict]:
    """The messages after ``index`` up to (not including) the last answer: the rest of the last answer's prompt."""
    last = max(i for i, m in enumerate(prepared) if m["role"] == "assistant")
    return prepared[index + 1: last]


def _thought_inserts(tokenizer, prepared, spans, prefix, mask_history) -> list[tuple[int, str, bool]]:
    """LLaMA-Factory's reasoning templates: a thought block before each earlier answer the template rendered without
    one; (where, text, trained)."""
    style = style_of(tokenizer)
    if style.template not in LLAMAFACTORY_REASONING or "<think>" not in template_text(tokenizer) or mask_history:
        return []
    answers = [i for i, m in enumerate(prepared) if m["role"] == "assistant"][:-1]
    inserts = []
    for index, (start, _end) in zip(answers, spans):
        if prefix.startswith("<think>", start) or prefix[start:].lstrip().startswith("<think>"):
            continue
        reasoning = reasoning_of(prepared[index])
        inserts.append((start, with_thought(reasoning, "") or THOUGHT[0] + THOUGHT[1], style.enable_thinking))
    return inserts


def _apply_inserts(prefix: str, spans: list[tuple], inserts) -> tuple[str, list[tuple], list[tuple]]:
    """``prefix`` with the thought blocks inserted, the answer spans moved (a trained block joins its answer), and
    the spans of the inserted reasoning."""
    thoughts = []
    for where, text, trained in sorted(inserts, reverse=True):
        blank = len(prefix[where:]) - len(prefix[where:].lstrip("\n"))  # the block ends the answer's leading lines
        prefix = prefix[:where] + text + prefix[where + blank:]
        text = text[: len(text) - blank] if blank else text  # the shift of what follows
        moved = []
        for start, end in spans:
            if start == where:
                moved.append((start if trained else start + len(text), end + len(text)))
            elif start > where:
                moved.append((start + len(text), end + len(text)))
            else:
                moved.append((start, end))
        spans = moved
        thoughts = [(s + len(text), e + len(text)) if s >= where else (s, e) for s, e in thoughts]
        if text.strip() != (THOUGHT[0] + THOUGHT[1]).strip():
            thoughts.append((where, where + len(text)))
    return prefix, spans, thoughts


def _reasoning_spans(prefix: str, spans: list[tuple]) -> list[tuple]:
    """The thought blocks the template itself rendered inside earlier answers (a ``<think>`` the answer's own
    generation prompt opened included)."""
    found = []
    for start, end in spans:
        close = prefix.find("</think>", start, end)
        if close < 0:
            continue
        opened = prefix.rfind("<think>", 0, close)
        begin = max(opened, start) if opened >= 0 else start
        if prefix[begin:close].replace("<think>", "").strip():
            found.append((begin, close + len("</think>")))
    return found


def _answer_reasoning(tokenizer, continuation: str, answer_ids: list[int], reasoning: str | None) -> list[bool]:
    """Which tokens of the last answer are its reasoning: the reasoning's text where the template wrote it (in a
    ``<think>`` block, gpt-oss's analysis channel, ...), with the thought tags around it."""
    at = continuation.find(reasoning.strip()) if reasoning and reasoning.strip() else -1
    if at < 0:
        return [False] * len(answer_ids)
    start, end = at, at + len(reasoning.strip())
    before, after = continuation[:start].rstrip(), continuation[end:]
    if before.endswith("<think>"):
        start = len(before) - len("<think>")
    if after.lstrip().startswith("</think>"):
        end += len(after) - len(after.lstrip()) + len("</think>")
    marks, position = [], 0
    for token in answer_ids:
        marks.append(start <= position < end)
        position += len(tokenizer.decode([token]))
    return marks


def _offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    """(token id, the character where it starts) for each token of ``text``."""
    if not text:
        return []
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(t, start) for t, (start, _end) in zip(encoded["input_ids"], encoded["offset_mapping"])]
    except (NotImplementedError, TypeError, ValueError):  # a tokenizer without offsets: count decoded characters
        ids, out, position = token_ids(tokenizer, text), [], 0
        for token in ids:
            out.append((token, position))
            position += len(tokenizer.decode([token]))
        return out


def answer_texts(tokenizer, prompt: list[dict], answer: dict | list[dict], tools=None) -> tuple[str, str]:
    """(prompt text, answer text) of one answer to ``prompt``: the prompt exactly as at inference (earlier answers as
    the template renders them in history), the answer as the template writes it after that."""
    answer = list(answer) if isinstance(answer, list) else [answer]
    prefix, continuation, *_ = _layout(tokenizer, [*prompt, *answer], tools, False, False)
    return prefix, continuation


def answer_ids(tokenizer, prompt: list[dict], answer: dict | list[dict], tools=None) -> tuple[list[int], list[int]]:
    """``answer_texts`` as token ids (how rm, dpo, kto and the reward model's scores see a pair)."""
    prefix, continuation = answer_texts(tokenizer, prompt, answer, tools)
    return token_ids(tokenizer, prefix), token_ids(tokenizer, continuation)
