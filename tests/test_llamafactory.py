"""LLaMA-Factory's habits: its data files, its keys and its outputs work here unchanged (rows written here,
in the shape of LLaMA-Factory's ``data/`` folder)."""

import json
from pathlib import Path

import pytest

import tunekit as tk
from tunekit.data import load_rows

from conftest import write_dataset

TEXTS = [
    "The lighthouse keeper counted ships through the fog every evening.",
    "",  # a blank line is no text
    "Bread rises faster in a warm kitchen than in a cold one.",
    "A river delta forms where slow water drops the sand it carried.",
]


def test_txt_files_are_one_text_per_line_and_pretrain(tiny, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wiki_demo.txt").write_text("\n".join(TEXTS * 5) + "\n", encoding="utf-8")
    (data / "dataset_info.json").write_text(json.dumps({"wiki_demo": {"file_name": "wiki_demo.txt",
                                                                      "columns": {"prompt": "text"}}}))
    cfg = tk.load_config({**tiny, "stage": "pt", "dataset": "wiki_demo", "dataset_dir": str(data), "cutoff_len": 16})
    rows = load_rows(cfg, "text")["train"]
    assert len(rows) == 15 and rows[0]["text"] == TEXTS[0]
    result = tk.train(cfg, max_steps=2)
    assert result.trainer.state.global_step == 2


def test_arrow_files_and_folders_of_them_are_read(tiny, tmp_path):
    import datasets

    rows = [{"instruction": f"Say the number {i}.", "input": "", "output": f"{i}"} for i in range(6)]
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(rows).save_to_disk(str(saved))
    data = tmp_path / "data"
    (data / "shards").mkdir(parents=True)
    arrow = next(saved.glob("*.arrow"))
    (data / "numbers.arrow").write_bytes(arrow.read_bytes())
    (data / "shards" / "a.arrow").write_bytes(arrow.read_bytes())
    (data / "shards" / "b.arrow").write_bytes(arrow.read_bytes())
    (data / "dataset_info.json").write_text(json.dumps({"numbers": {"file_name": "numbers.arrow"},
                                                        "shards": {"file_name": "shards"}}))
    cfg = tk.load_config({**tiny, "dataset": "numbers", "dataset_dir": str(data)})
    first = load_rows(cfg, "chat")["train"][0]["messages"]
    assert first[-1] == {"role": "assistant", "content": "0"}
    assert len(load_rows(tk.load_config({**tiny, "dataset": "shards", "dataset_dir": str(data)}), "chat")["train"]) == 12
    (data / "broken.arrow").write_bytes(b"not arrow at all")
    (data / "dataset_info.json").write_text(json.dumps({"broken": {"file_name": "broken.arrow"}}))
    with pytest.raises(tk.DataError, match="broken.arrow is not a readable Arrow file"):
        load_rows(tk.load_config({**tiny, "dataset": "broken", "dataset_dir": str(data)}), "chat")


def test_what_tunekit_saves_loads_in_older_transformers(tiny, tmp_path):
    """A base whose config.json carries the GGUF quantizer's leftover ``"quantization_config": null`` (as the
    default model's cache did): the merged export must not carry it (transformers 5.6 fails on it)."""
    import shutil

    from tunekit.models import resolve_model

    base = tmp_path / "base"
    shutil.copytree(resolve_model("tiny-random-llama"), base)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "quantization_config": None}))
    result = tk.train({**tiny, "model_name_or_path": str(base), "max_steps": 1})
    from tunekit.export import export

    out = export(tk.load_config({"model_name_or_path": str(base), "adapter_name_or_path": result.output_dir,
                                 "export_dir": str(tmp_path / "merged"), "do_train": False}))
    saved = json.loads((Path(out) / "config.json").read_text())
    assert "quantization_config" not in saved and saved["model_type"] == "llama"


# A Qwen3-style template of our own: answers carry a think block (empty here); with thinking off the
# generation prompt already holds the empty block, so the model is not asked to think.
THINKING_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- else -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
    "{%- endif -%}"
)


@pytest.fixture
def thinking_model(tmp_path):
    """The tiny model with a Qwen3-style chat template."""
    return tiny_with_template(tmp_path / "thinking", THINKING_TEMPLATE)


def tiny_with_template(folder: Path, template: str) -> str:
    """A copy of the tiny model whose tokenizer has ``template`` as its own chat template."""
    import shutil

    from tunekit.models import resolve_model

    shutil.copytree(resolve_model("tiny-random-llama"), folder)
    (folder / "chat_template.jinja").write_text(template)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return str(folder)


def _generation_prompt(model: str, **keys) -> str:
    tokenizer = tk.load_tokenizer(tk.load_config({"model_name_or_path": model, "dataset": "identity", **keys}))
    return tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)


def test_nothink_templates_and_enable_thinking_false_reach_the_chat_template(thinking_model):
    assert "<think>" not in _generation_prompt(thinking_model, template="qwen3")
    assert _generation_prompt(thinking_model, template="qwen3_nothink").endswith("<think>\n\n</think>\n\n")
    assert _generation_prompt(thinking_model, enable_thinking=False).endswith("<think>\n\n</think>\n\n")

    def think_tokens_trained(template: str) -> bool:
        cfg = tk.load_config({"model_name_or_path": thinking_model, "dataset": "identity", "template": template,
                              "cutoff_len": 256})
        tokenizer = tk.load_tokenizer(cfg)
        row = tk.load_data(cfg, tokenizer)["train"][0]
        trained = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != -100])
        assert "<think>" in tokenizer.decode(row["input_ids"])
        return "<think>" in trained

    assert think_tokens_trained("qwen3")  # thinking on: the (empty) reasoning is part of the answer
    assert not think_tokens_trained("qwen3_nothink")  # off: the empty block is given, as at inference


def test_template_names_llamafactory_knows_and_ones_it_does_not(recwarn):
    with pytest.raises(tk.ConfigError) as err:
        tk.load_config({"dataset": "identity", "template": "no_such_template"})
    message = str(err.value)
    assert "template='no_such_template'" in message and "qwen3_nothink" in message and "llama3" in message
    with pytest.raises(tk.ConfigError, match="did you mean 'qwen3'"):
        tk.load_config({"dataset": "identity", "template": "qwen33"})
    for name in ("qwen3", "qwen3_nothink", "llama3", "mistral", "gemma", "deepseek3", "chatml", "default", "empty"):
        tk.load_config({"dataset": "identity", "template": name})  # LLaMA-Factory's names are understood


def test_a_template_of_another_format_than_the_tokenizers_warns_once_and_says_which_is_used():
    with pytest.warns(UserWarning) as caught:
        prompt = _generation_prompt("tiny-random-llama", template="llama3")
    said = [str(w.message) for w in caught if "template=" in str(w.message)]
    assert len(said) == 1 and "<|start_header_id|>" in said[0] and "tokenizer's own template is used" in said[0]
    assert prompt.startswith("<|im_start|>user")  # the model's own (ChatML) format
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _generation_prompt("tiny-random-llama", template="qwen")  # the same (ChatML) format: nothing to say


# SmolLM2's own template, in short: a default system prompt when the conversation has none.
SYSTEM_PROMPT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful bot<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_template_chatml_renders_rows_as_llamafactory_does_without_the_tokenizers_system_prompt(tmp_path):
    model = tiny_with_template(tmp_path / "smollm2-like", SYSTEM_PROMPT_TEMPLATE)
    assert "You are a helpful bot" in _generation_prompt(model)  # no template key: the tokenizer's own
    assert "You are a helpful bot" in _generation_prompt(model, template="smollm2")  # a name it keeps
    assert _generation_prompt(model, template="chatml") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    cfg = tk.load_config({"model_name_or_path": model, "dataset": "identity", "template": "chatml"})
    tokenizer = tk.load_tokenizer(cfg)
    row = tk.load_data(cfg, tokenizer)["train"][0]
    assert tokenizer.decode(row["input_ids"]).startswith("<|im_start|>user\n")  # what trains has no system turn


def test_tokenized_path_saves_the_rows_and_stops_then_trains_on_them(tiny, tmp_path):
    """LLaMA-Factory's preprocessing run (examples/train_lora/qwen3_preprocess.yaml): the first run saves the
    prepared rows and trains nothing; the next loads them without reading the data sets again."""
    from conftest import run_cli

    saved = tmp_path / "tokenized"
    config = tmp_path / "preprocess.yaml"
    config.write_text(json.dumps({**tiny, "tokenized_path": str(saved), "max_steps": 2}))
    first = run_cli("train", config)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "saved" in first.stdout and str(saved) in first.stdout and "training did not start" in first.stdout
    assert (saved / "dataset_dict.json").is_file() and not Path(tiny["output_dir"]).exists()

    import datasets

    rows = datasets.load_from_disk(str(saved))["train"]
    assert {"input_ids", "labels"} <= set(rows.column_names) and len(rows) == 92
    # the second run reads the saved rows: the data set named in the config is not opened again
    result = tk.train({**tiny, "tokenized_path": str(saved), "dataset": "no_such_set", "max_steps": 2})
    assert result.trainer.state.global_step == 2 and len(result.trainer.train_dataset) == 92
    with pytest.raises(tk.ConfigError, match="prepared for stage=sft"):
        tk.train({**tiny, "stage": "pt", "tokenized_path": str(saved), "output_dir": str(tmp_path / "pt")})


LONG = ("The harbour town kept its lanterns lit through the whole winter, and the keepers wrote down every ship "
        "that passed, its flag, its cargo and the hour it came in. ")


def _long_preference_set(folder: Path, rows: int = 8) -> None:
    """sharegpt preference rows like LLaMA-Factory's dpo_en_demo: multi-turn prompts far longer than cutoff_len."""
    data = []
    for i in range(rows):
        turns = []
        for turn in range(6):  # 11 messages before the answers
            turns += [{"from": "human", "value": f"Question {turn} of row {i}. " + LONG * 2},
                      {"from": "gpt", "value": f"Answer {turn}. " + LONG}]
        turns.append({"from": "human", "value": f"And the last ship of row {i}?"})
        data.append({"conversations": turns, "chosen": {"from": "gpt", "value": "The Wren, at dawn. " + LONG},
                     "rejected": {"from": "gpt", "value": "No idea."}})
    write_dataset(folder, "long_pairs", data, {"formatting": "sharegpt", "ranking": True,
                                               "columns": {"messages": "conversations", "chosen": "chosen",
                                                           "rejected": "rejected"}})


@pytest.mark.parametrize("pref_loss", ["sigmoid", "orpo", "simpo"])
def test_pairs_longer_than_cutoff_len_are_cut_in_proportion_and_train_without_nan(tiny, tmp_path, pref_loss, capsys):
    _long_preference_set(tmp_path / "data")
    config = {**tiny, "stage": "dpo", "pref_loss": pref_loss, "dataset": "long_pairs",
              "dataset_dir": str(tmp_path / "data"), "cutoff_len": 96, "per_device_train_batch_size": 2,
              "max_steps": 2}
    result = tk.train(config)
    losses = [r["loss"] for r in tk.read_log(result.log_path) if "loss" in r]
    assert losses and all(isinstance(x, float) and x == x for x in losses)  # finite numbers, no NaN
    assert "8 of 8 rows of 'long_pairs' are longer than cutoff_len=96" in capsys.readouterr().out
    assert len(result.trainer.train_dataset) == 8  # none dropped


def test_cut_rows_fit_and_every_answer_keeps_tokens(tiny, tmp_path):
    _long_preference_set(tmp_path / "data", rows=3)
    cfg = tk.load_config({**tiny, "stage": "dpo", "dataset": "long_pairs", "dataset_dir": str(tmp_path / "data"),
                          "cutoff_len": 96})
    tokenizer = tk.load_tokenizer(cfg)
    for row in tk.load_data(cfg, tokenizer)["train"]:
        def length(messages, generation=False):
            return len(tokenizer.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True,
                                                     return_dict=True)["input_ids"])
        prompt = length(row["prompt"], True)
        for side in ("chosen", "rejected"):
            whole = length(row["prompt"] + row[side])
            assert whole <= 96 and whole - prompt >= 2  # an answer token and the end of the turn
        assert row["prompt"][-1]["content"].startswith("And the last ship")  # the question answered is kept
        assert row["chosen"][0]["content"].startswith("The Wren")
        assert "No idea.".startswith(row["rejected"][0]["content"].strip()) and row["rejected"][0]["content"].strip()


# -- tool calling ---------------------------------------------------------------------------------

WEATHER = [{"name": "get_weather", "description": "Today's weather in a town",
            "parameters": {"type": "object", "properties": {"town": {"type": "string"}}, "required": ["town"]}}]


def _toolcall_set(folder: Path) -> None:
    """sharegpt rows with a tools column, function_call and observation turns (glaive_toolcall_en_demo's shape)."""
    rows = []
    for town, sky in (("Lyon", "sunny"), ("Porto", "rainy"), ("Oslo", "snowy"), ("Cork", "windy")):
        rows.append({"conversations": [
            {"from": "human", "value": f"What is the weather in {town}?"},
            {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"town": town}})},
            {"from": "observation", "value": json.dumps({"sky": sky})},
            {"from": "gpt", "value": f"It is {sky} in {town} today."},
        ], "tools": json.dumps(WEATHER)})
    write_dataset(folder, "weather_calls", rows, {"formatting": "sharegpt",
                                                  "columns": {"messages": "conversations", "tools": "tools"}})


# A template of our own that renders tools and tool_calls itself, as recent models' templates do.
TOOLS_TEMPLATE = (
    "{%- if tools -%}{{ '<|im_start|>system\\nFunctions: ' + (tools | tojson) + '<|im_end|>\\n' }}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' and message.get('tool_calls') -%}"
    "{{ '<|im_start|>assistant\\n' }}{%- for call in message['tool_calls'] -%}"
    "{{ '<call>' + (call['function'] | tojson) + '</call>' }}{%- endfor -%}{{ '<|im_end|>\\n' }}"
    "{%- else -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def _trained_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != -100])


def test_tools_and_calls_reach_a_template_that_knows_them(tiny, tmp_path):
    from tunekit.data import encode_chat

    folder = tiny_with_template(tmp_path / "tool_model", TOOLS_TEMPLATE)
    _toolcall_set(tmp_path / "data")
    cfg = tk.load_config({**tiny, "model_name_or_path": folder, "dataset": "weather_calls",
                          "dataset_dir": str(tmp_path / "data"), "cutoff_len": 512})
    tokenizer = tk.load_tokenizer(cfg)
    row = load_rows(cfg, "chat", tokenizer)["train"][0]
    encoded = encode_chat(tokenizer, row["messages"], 512, tools=row["tools"])
    text = tokenizer.decode(encoded["input_ids"])
    assert text.startswith("<|im_start|>system\nFunctions: [{") and '"get_weather"' in text.split("<|im_end|>")[0]
    assert '<call>{"name": "get_weather", "arguments": {"town": "Lyon"}}</call>' in text
    trained = _trained_text(tokenizer, encoded)
    assert "<call>" in trained and "It is sunny in Lyon today." in trained  # the call and the words carry loss
    assert "Functions" not in trained and '"sky"' not in trained  # the tools and the observation do not


def test_tools_go_into_the_system_message_where_the_template_has_no_tool_support(tiny, tmp_path):
    _toolcall_set(tmp_path / "data")
    config = {**tiny, "dataset": "weather_calls", "dataset_dir": str(tmp_path / "data"), "cutoff_len": 512}
    cfg = tk.load_config(config)
    tokenizer = tk.load_tokenizer(cfg)
    row = tk.load_data(cfg, tokenizer)["train"][0]
    text = tokenizer.decode(row["input_ids"])
    assert text.startswith("<|im_start|>system\nYou can call these tools:\n- get_weather: Today's weather")
    trained = _trained_text(tokenizer, row)
    assert "Action: get_weather\nAction Input: {\"town\": \"Lyon\"}" in trained and "It is sunny" in trained
    assert "You can call" not in trained and '"sky"' not in trained
    result = tk.train({**config, "max_steps": 2})
    assert result.trainer.state.global_step == 2

    from tunekit.widgets import DataPanel

    panel = DataPanel(config)
    assert "get_weather" in panel.view.value and "tk-tools" in panel.view.value
    spans = panel.token_spans()[0]
    said = "".join(text for text, loss in spans if loss)
    assert "Action: get_weather" in said and '"sky"' not in said


# -- every stage from LLaMA-Factory-shaped YAML and data -----------------------------------------------


def _llamafactory_data(folder: Path) -> None:
    """A data folder in the shape of LLaMA-Factory's (rows of our own), using every column and tag its
    data/README documents: system, history, tools, ranking, kto_tag, the sharegpt tags, the openai format."""
    folder.mkdir(parents=True, exist_ok=True)
    tools = json.dumps(WEATHER)
    alpaca = [{"instruction": f"Add {i} and {i + 1}.", "input": "Answer with the number only." if i % 2 else "",
               "output": str(2 * i + 1), "system": "You are a careful calculator.",
               "history": [["What is 1 + 1?", "2"]] if i % 3 == 0 else [], "tools": tools if i % 4 == 0 else ""}
              for i in range(8)]
    tagged = [{"dialogue": [
        {"speaker": "rules", "text": "Answer about the weather."},
        {"speaker": "person", "text": f"Weather in town {i}?"},
        {"speaker": "call", "text": json.dumps({"name": "get_weather", "arguments": {"town": f"town {i}"}})},
        {"speaker": "result", "text": json.dumps({"sky": "clear"})},
        {"speaker": "bot", "text": f"The sky over town {i} is clear."}], "functions": tools} for i in range(6)]
    openai = [{"messages": [{"role": "system", "content": "Be short."},
                            {"role": "user", "content": f"Name a colour, number {i}."},
                            {"role": "assistant", "content": ["red", "blue", "green", "amber"][i % 4]}]}
              for i in range(8)]
    pairs = [{"conversations": [{"from": "human", "value": f"Is {i} even?"}],
              "chosen": {"from": "gpt", "value": "Yes." if i % 2 == 0 else "No."},
              "rejected": {"from": "gpt", "value": "Bananas."}} for i in range(8)]
    alpaca_pairs = [{"instruction": f"Spell {w}.", "input": "", "chosen": "-".join(w), "rejected": w[::-1]}
                    for w in ("cat", "dog", "owl", "emu", "yak", "elk", "ant", "bee")]
    kto = [{"messages": [{"role": "user", "content": f"Double {i}."},
                         {"role": "assistant", "content": str(2 * i if i % 2 else i)}], "label": bool(i % 2)}
           for i in range(8)]
    files = {"alpaca_full.json": alpaca, "tagged.json": tagged, "openai.json": openai, "pairs.json": pairs,
             "alpaca_pairs.json": alpaca_pairs, "kto.json": kto}
    for name, rows in files.items():
        (folder / name).write_text(json.dumps(rows))
    (folder / "c4.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS if t))
    (folder / "wiki.txt").write_text("\n".join(TEXTS))
    info = {
        "alpaca_full": {"file_name": "alpaca_full.json", "columns": {
            "prompt": "instruction", "query": "input", "response": "output", "system": "system",
            "history": "history", "tools": "tools"}},
        "tagged": {"file_name": "tagged.json", "formatting": "sharegpt",
                   "columns": {"messages": "dialogue", "tools": "functions"},
                   "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "person",
                            "assistant_tag": "bot", "observation_tag": "result", "function_tag": "call",
                            "system_tag": "rules"}},
        "openai": {"file_name": "openai.json", "formatting": "openai"},
        "pairs": {"file_name": "pairs.json", "formatting": "sharegpt", "ranking": True,
                  "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "alpaca_pairs": {"file_name": "alpaca_pairs.json", "ranking": True,
                         "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                     "rejected": "rejected"}},
        "kto": {"file_name": "kto.json", "formatting": "sharegpt",
                "columns": {"messages": "messages", "kto_tag": "label"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant"}},
        "c4": {"file_name": "c4.jsonl", "columns": {"prompt": "text"}},
        "wiki": {"file_name": "wiki.txt", "columns": {"prompt": "text"}},
    }
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))


def _yaml(stage: str, dataset: str, output_dir: Path, **extra) -> str:
    """A config laid out as LLaMA-Factory's examples/train_lora/*.yaml, the model swapped for the tiny one."""
    keys = {"stage": stage, "dataset": dataset, **extra}
    lines = ["### model", "model_name_or_path: tiny-random-llama", "trust_remote_code: true", "",
             "### method", f"stage: {keys.pop('stage')}", "do_train: true", "finetuning_type: lora",
             "lora_rank: 8", "lora_target: all", "",
             "### dataset", f"dataset: {keys.pop('dataset')}", "template: qwen3_nothink", "cutoff_len: 256",
             "max_samples: 1000", "preprocessing_num_workers: 16", "dataloader_num_workers: 0", "",
             "### output", f"output_dir: {output_dir}", "logging_steps: 1", "save_steps: 500", "plot_loss: true",
             "overwrite_output_dir: true", "report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]",
             "", "### train", "per_device_train_batch_size: 1", "gradient_accumulation_steps: 2",
             "learning_rate: 1.0e-4", "num_train_epochs: 3.0", "lr_scheduler_type: cosine", "warmup_ratio: 0.1",
             "bf16: true", "ddp_timeout: 180000000", "max_steps: 1", ""]
    lines += [f"{k}: {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def test_every_stage_runs_from_llamafactory_shaped_yaml_and_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _llamafactory_data(tmp_path / "data")  # dataset_dir's default, "data", as in LLaMA-Factory's checkout
    runs = [
        ("pt", "c4,wiki", {}),
        ("sft", "alpaca_full,tagged,openai", {}),
        ("rm", "pairs,alpaca_pairs", {}),
        ("dpo", "pairs,alpaca_pairs", {"pref_beta": 0.1, "pref_loss": "sigmoid"}),
        ("dpo", "pairs", {"pref_loss": "orpo"}),
        ("dpo", "pairs", {"pref_loss": "simpo", "simpo_gamma": 0.5}),
        ("kto", "kto", {"pref_beta": 0.1}),
        ("ppo", "alpaca_full", {"reward_model": str(tmp_path / "saves" / "rm"), "max_new_tokens": 8}),
        ("grpo", "openai", {"reward_funcs": "length", "num_generations": 2, "max_new_tokens": 8}),
    ]
    for number, (stage, dataset, extra) in enumerate(runs):
        out = tmp_path / "saves" / (stage if stage != "dpo" else f"dpo{number}")
        config = tmp_path / f"{number}_{stage}.yaml"
        config.write_text(_yaml(stage, dataset, out, **extra))
        result = tk.train(str(config))
        assert result.trainer.state.global_step == 1, (stage, extra)
        losses = [r["loss"] for r in tk.read_log(result.log_path) if "loss" in r]
        assert losses and all(x == x for x in losses), (stage, extra, losses)  # numbers, no NaN
        assert (out / "adapter_config.json").is_file() and (out / "training_loss.png").is_file(), stage
