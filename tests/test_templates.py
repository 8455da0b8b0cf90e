"""Every chat template trl ships (the models' own, read from the installed package) renders ordinary rows, with labels
on the answers and their end-of-turn tokens only, and the prompt of the last answer exactly as at inference."""

import json

import pytest
from families import TEMPLATES, template_names, tokenizer_for

from tunekit import rendering
from tunekit.data import IGNORE_INDEX, encode_chat
from tunekit.errors import DataError
from tunekit.templates import ensure_chat_template


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


SYSTEM = {"role": "system", "content": "Answer briefly."}
SHAPES = {
    "one turn": [U("Hi there"), A("Hello! How can I help?")],
    "system": [SYSTEM, U("Hi there"), A("Hello! How can I help?")],
    "two turns": [U("Hi there"), A("Hello! How can I help?"), U("What is 2 + 2?"), A("It is 4.")],
    "three turns": [SYSTEM, U("Hi"), A("Hello!"), U("What is 2 + 2?"), A("It is 4."), U("And 3 + 3?"), A("Six.")],
    "reasoning": [U("What is 2 + 2?"), A("<think>\nTwo and two make four.\n</think>\n\nIt is 4.")],
    "long history": [x for i in range(6) for x in (U(f"Question {i}?"), A(f"Answer {i}."))],
}


def styled(name, **style):
    tokenizer = tokenizer_for(name)
    ensure_chat_template(tokenizer, style.get("template"), style.get("enable_thinking", True),
                         style.get("preserve_thinking", False))
    return tokenizer


def trained_text(tokenizer, row):
    return tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX])


def last_answer_start(labels):
    i = len(labels) - 1
    while i >= 0 and labels[i] != IGNORE_INDEX:
        i -= 1
    return i + 1


def test_the_installed_templates_are_found():
    names = template_names()
    assert {"qwen3", "llama3", "gemma", "phi3", "gptoss", "deepseek_r1_distill"} <= set(names)
    assert len(names) >= 30


@pytest.mark.parametrize("name", template_names())
@pytest.mark.parametrize("mask_history", [False, True])
def test_every_template_trains_every_shape_as_it_chats(name, mask_history):
    tokenizer = styled(name)
    for shape, messages in SHAPES.items():
        row = encode_chat(tokenizer, messages, 4096, mask_history=mask_history)
        ids, labels = row["input_ids"], row["labels"]
        assert len(ids) == len(labels) == len(row["attention_mask"])
        # train as you chat: before the last answer, exactly what the model is shown at inference
        shown = messages[:-1]
        if shown[0]["role"] == "system" and rendering.refuses_system(tokenizer):
            shown = rendering.fold_system(shown)
        prompt = tokenizer.apply_chat_template(shown, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        start = last_answer_start(labels)
        assert ids[:start] == list(prompt), (name, shape)
        # labels: the answers (and their end-of-turn tokens), nothing of the user's or the system's
        trained = trained_text(tokenizer, row)
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        kept = answers[-1:] if mask_history else answers
        for answer in kept:
            assert rendering.split_thought(answer)[1].strip() in trained, (name, shape, answer, trained)
        for message in messages:
            if message["role"] != "assistant":
                assert message["content"] not in trained, (name, shape, trained)
        if mask_history:
            for answer in answers[:-1]:
                assert answer not in trained, (name, shape)
        # the last answer ends with the template's end of turn, and it is trained
        assert labels[-1] == ids[-1]
        full = tokenizer.apply_chat_template(shown + [messages[-1]] if shown is not messages[:-1] else messages,
                                             tokenize=False)
        end = tokenizer.decode(ids[start:])
        assert full.rstrip().endswith(end.rstrip()[-8:]) or end.endswith(str(tokenizer.eos_token)), (name, shape)


TOOLS = json.dumps([{"name": "weather", "description": "The weather of a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
CALL = {"role": "function_call", "content": json.dumps({"name": "weather", "arguments": {"city": "Paris"}})}


@pytest.mark.parametrize("name", template_names())
def test_every_template_trains_tool_calls_and_not_their_results(name):
    """A call is the assistant's (trained), its result the tool's (not): as the template renders tools where it
    knows them (trl's supports_tool_calling), else as LLaMA-Factory's ReAct text."""
    tokenizer = styled(name)
    messages = [U("Weather in Paris?"), CALL, {"role": "tool", "content": "sunny, 22 degrees"}, A("Sunny in Paris.")]
    row = encode_chat(tokenizer, messages, 4096, tools=TOOLS)
    trained = trained_text(tokenizer, row)
    assert "weather" in trained and "Paris" in trained and "Sunny in Paris." in trained, (name, trained)
    assert "sunny, 22 degrees" not in trained and "Weather in Paris?" not in trained, (name, trained)
    assert "sunny, 22 degrees" in tokenizer.decode(row["input_ids"])


@pytest.mark.parametrize("name", [n for n in template_names() if (TEMPLATES / f"{n}_training.jinja").exists()])
def test_masks_agree_with_trls_generation_tagged_templates(name):
    """Where trl's training template renders a conversation as the model's own does and starts the answer where the
    generation prompt ends, the labels are exactly its assistant mask (transformers' return_assistant_tokens_mask)."""
    tokenizer = styled(name)
    training = (TEMPLATES / f"{name}_training.jinja").read_text(encoding="utf-8")
    compared = 0
    for shape, messages in SHAPES.items():
        if shape == "reasoning" or messages[0]["role"] == "system" and rendering.refuses_system(tokenizer):
            continue
        if tokenizer.apply_chat_template(messages, tokenize=False) != tokenizer.apply_chat_template(
                messages, tokenize=False, chat_template=training):
            continue
        theirs = tokenizer.apply_chat_template(messages, chat_template=training, return_dict=True,
                                               return_assistant_tokens_mask=True)
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        mask = theirs["assistant_masks"]
        if last_answer_start([1 if m else IGNORE_INDEX for m in mask]) != len(prompt):
            continue  # trl trains the role header too (gpt-oss, DeepSeek): the header is the generation prompt's
        row = encode_chat(tokenizer, messages, 4096)
        assert row["input_ids"] == theirs["input_ids"], (name, shape)
        assert [label != IGNORE_INDEX for label in row["labels"]] == [bool(m) for m in mask], (name, shape)
        compared += 1
    if name in ("llama3", "qwen3_instruct_2507", "phi3", "gemma", "gemma3", "cohere"):
        assert compared >= 3


def test_qwen3_by_llamafactorys_name_puts_a_thought_block_before_every_answer():
    messages = SHAPES["three turns"]
    own = trained_text(styled("qwen3"), encode_chat(styled("qwen3"), messages, 4096))
    assert own.count("<think>") == 1  # the model's own template: an empty block before the last answer only
    tokenizer = styled("qwen3", template="qwen3")
    row = encode_chat(tokenizer, messages, 4096)
    assert trained_text(tokenizer, row).count("<think>\n\n</think>\n\n") == 3  # LLaMA-Factory: before every answer
    off = styled("qwen3", template="qwen3", enable_thinking=False)
    row = encode_chat(off, messages, 4096)
    assert "<think>" not in trained_text(off, row)  # enable_thinking: false: the blocks are prompt, no loss
    assert off.decode(row["input_ids"]).count("<think>\n\n</think>\n\n") == 3


def test_reasoning_is_trained_and_marked_and_dropped_without_thinking():
    messages = SHAPES["reasoning"]
    for name in ("qwen3", "deepseek_r1_distill", "llama3", "gptoss"):
        tokenizer = styled(name)
        row = encode_chat(tokenizer, messages, 4096, reasoning=True)
        assert "Two and two make four." in trained_text(tokenizer, row), name
        marked = tokenizer.decode([t for t, r in zip(row["input_ids"], row["reasoning"]) if r])
        assert "Two and two make four." in marked and "It is 4." not in marked, name
    tokenizer = styled("qwen3", enable_thinking=False)
    row = encode_chat(tokenizer, messages, 4096, reasoning=True)
    assert "Two and two" not in tokenizer.decode(row["input_ids"]) and not any(row["reasoning"])


def test_reasoning_fields_of_the_openai_format_are_read(tmp_path):
    from tunekit.data.formats import convert
    from tunekit.data.registry import DatasetEntry

    entry = DatasetEntry(name="r", folder=tmp_path, file_name="r.json", formatting="openai")
    row = {"messages": [{"role": "user", "content": "2 + 2?"},
                        {"role": "assistant", "content": "4", "reasoning_content": "Two and two."}]}
    messages = convert(entry, [row], "chat", {})[0]["messages"]
    assert rendering.split_thought(messages[-1]["content"]) == ("Two and two.", "4")


def test_gemma_folds_the_system_turn_with_one_warning():
    tokenizer = styled("gemma")
    with pytest.warns(UserWarning, match="no system role"):
        row = encode_chat(tokenizer, SHAPES["system"], 4096)
    text = tokenizer.decode(row["input_ids"])
    assert "<start_of_turn>user\nAnswer briefly.\n\nHi there<end_of_turn>" in text


def test_a_row_the_template_refuses_is_a_one_line_error_naming_the_template_and_the_row(tiny, tmp_path):
    import tunekit as tk
    from conftest import write_dataset

    tokenizer = styled("llava_next")  # a vision template: text content is not what it takes
    with pytest.raises(DataError, match="llava_next chat template cannot render") as err:
        encode_chat(tokenizer, SHAPES["one turn"], 4096)
    assert "\n" not in str(err.value) and "UndefinedError" not in str(err.value)
    rows = [{"messages": [U("Hi"), A("Hello!")]}, {"messages": [U("2 + 2?"), A("4")]}]
    write_dataset(tmp_path / "data", "rows", rows, {"formatting": "openai"})
    config = {**tiny, "dataset": "rows", "dataset_dir": str(tmp_path / "data")}
    with pytest.raises(DataError, match=r"dataset 'rows' row 1 of its train split: the llava_next chat template "
                                        "cannot render") as err:
        tk.load_data(config, tokenizer)
    assert "\n" not in str(err.value)
