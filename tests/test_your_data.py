"""Data as users have it: a file, a folder, a saved ``datasets`` set, a hub id or rows in memory, in
LLaMA-Factory's formats or TRL's documented ones (``docs/source/dataset_formats.md`` in huggingface/trl),
found from the columns; what was read is said. The rows are our own."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

import tunekit as tk
from conftest import run_cli
from tunekit.data import load_rows
from tunekit.errors import DataError
from tunekit.rendering import with_thought
from tunekit.run import load_config


def conversation(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


QUESTIONS = [(f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}.\n#### {2 * i}") for i in range(8)]
FORMATS = {  # one list of rows per format, eight rows each
    "alpaca": [{"instruction": q, "input": "", "output": a} for q, a in QUESTIONS],
    "sharegpt": [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in QUESTIONS],
    "openai": [{"messages": [{"role": "system", "content": "Be brief."}, *conversation(q, a)]} for q, a in QUESTIONS],
    "alpaca_preference": [{"instruction": q, "chosen": a, "rejected": "I do not know."} for q, a in QUESTIONS],
    "text": [{"text": f"{q} {a}"} for q, a in QUESTIONS],
    "prompt": [{"prompt": q, "solution": a} for q, a in QUESTIONS],
    "prompt_conversational": [{"prompt": [{"role": "user", "content": q}]} for q, _ in QUESTIONS],
    "prompt_completion": [{"prompt": q, "completion": a} for q, a in QUESTIONS],
    "prompt_completion_conversational": [{"prompt": [{"role": "user", "content": q}],
                                          "completion": [{"role": "assistant", "content": a}]} for q, a in QUESTIONS],
    "preference": [{"prompt": q, "chosen": a, "rejected": "No idea."} for q, a in QUESTIONS],
    "preference_conversational": [{"prompt": [{"role": "user", "content": q}],
                                   "chosen": [{"role": "assistant", "content": a}],
                                   "rejected": [{"role": "assistant", "content": "No idea."}]} for q, a in QUESTIONS],
    "implicit": [{"chosen": f"{q} {a}", "rejected": f"{q} No idea."} for q, a in QUESTIONS],
    "implicit_conversational": [{"chosen": conversation(q, a), "rejected": conversation(q, "No idea.")}
                                for q, a in QUESTIONS],
    "unpaired": [{"prompt": q, "completion": a if i % 2 else "No idea.", "label": bool(i % 2)}
                 for i, (q, a) in enumerate(QUESTIONS)],
    "unpaired_conversational": [{"prompt": [{"role": "user", "content": q}],
                                 "completion": [{"role": "assistant", "content": a if i % 2 else "No idea."}],
                                 "label": bool(i % 2)} for i, (q, a) in enumerate(QUESTIONS)],
    "llamafactory_kto": [{"messages": conversation(q, a), "label": bool(i % 2)} for i, (q, a) in enumerate(QUESTIONS)],
    "content_parts": [{"messages": [{"role": "user", "content": [{"type": "text", "text": q}]},
                                    {"role": "assistant", "content": [{"type": "reasoning", "value": "Add them."},
                                                                      {"type": "text", "value": a}]}]}
                      for q, a in QUESTIONS],
    "tools": [{"messages": [{"role": "user", "content": f"Weather in city {i}?"},
                            {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                                "name": "weather", "arguments": {"city": f"city {i}"}}}]},
                            {"role": "tool", "name": "weather", "content": "Sunny."},
                            {"role": "assistant", "content": "It is sunny."}],
               "tools": [{"type": "function", "function": {"name": "weather", "description": "The weather in a city",
                                                           "parameters": {"type": "object", "properties": {
                                                               "city": {"type": "string"}}}}}]} for i in range(8)],
}


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def rows_of(stage: str, data, kind: str | None = None, **keys):
    needs = {"grpo": {"num_generations": 2, "per_device_train_batch_size": 2}, "ppo": {"reward_model_type": "function"}}
    cfg = load_config(None, stage=stage, data=data, **needs.get(stage, {}), **keys)
    from tunekit.stages import stage_of

    return load_rows(cfg, kind or stage_of(cfg).rows)


# ---------------------------------------------------------------------------------------------
# formats, found from the columns
# ---------------------------------------------------------------------------------------------

Q, A = QUESTIONS[0]
USER, ANSWER = {"role": "user", "content": Q}, {"role": "assistant", "content": A}
NO_IDEA = {"role": "assistant", "content": "No idea."}
READS = [  # (format, stage, the first canonical row)
    ("alpaca", "sft", {"messages": [USER, ANSWER]}),
    ("sharegpt", "sft", {"messages": [USER, ANSWER]}),
    ("openai", "sft", {"messages": [{"role": "system", "content": "Be brief."}, USER, ANSWER]}),
    ("alpaca_preference", "dpo", {"prompt": [USER], "chosen": [ANSWER],
                                  "rejected": [{"role": "assistant", "content": "I do not know."}]}),
    ("text", "pt", {"text": f"{Q} {A}"}),
    ("text", "sft", {"text": f"{Q} {A}"}),
    ("prompt", "grpo", {"messages": [USER, ANSWER]}),  # the solution column is the reference answer
    ("prompt_conversational", "ppo", {"messages": [USER]}),
    ("prompt_completion", "sft", {"messages": [USER, ANSWER]}),
    ("prompt_completion_conversational", "sft", {"messages": [USER, ANSWER]}),
    ("prompt_completion", "grpo", {"messages": [USER, ANSWER]}),
    ("preference", "rm", {"prompt": [USER], "chosen": [ANSWER], "rejected": [NO_IDEA]}),
    ("preference_conversational", "dpo", {"prompt": [USER], "chosen": [ANSWER], "rejected": [NO_IDEA]}),
    ("implicit", "dpo", {"prompt": [USER], "chosen": [ANSWER], "rejected": [NO_IDEA]}),
    ("implicit_conversational", "dpo", {"prompt": [USER], "chosen": [ANSWER], "rejected": [NO_IDEA]}),
    ("preference", "grpo", {"messages": [USER, ANSWER]}),
    ("unpaired", "kto", {"prompt": [USER], "completion": [NO_IDEA], "label": False}),
    ("unpaired_conversational", "kto", {"prompt": [USER], "completion": [NO_IDEA], "label": False}),
    ("preference", "kto", {"prompt": [USER], "completion": [ANSWER], "label": True}),
    ("llamafactory_kto", "kto", {"prompt": [USER], "completion": [ANSWER], "label": False}),
    ("content_parts", "sft", {"messages": [USER, {"role": "assistant", "content": with_thought("Add them.", A)}]}),
]


@pytest.mark.parametrize("name,stage,first", READS, ids=[f"{f}-{s}" for f, s, _ in READS])
def test_each_format_is_read_from_its_columns_as_the_stage_needs_it(name, stage, first, tmp_path):
    path = write_jsonl(tmp_path / f"{name}.jsonl", FORMATS[name])
    train = rows_of(stage, None, dataset=path)["train"]
    assert train[0] == first
    expected = 16 if (stage == "kto" and name.startswith("preference")) else 8  # a pair: a good and a bad row
    assert len(train) == expected


def test_a_preference_pair_given_to_kto_is_a_good_row_and_a_bad_row():
    train = rows_of("kto", FORMATS["implicit_conversational"][:2])["train"]
    assert [row["label"] for row in train] == [True, False, True, False]
    assert [row["completion"][0]["content"] for row in train][:2] == [A, "No idea."]


def test_tool_calls_and_the_tools_column_become_function_calls(tmp_path):
    row = rows_of("sft", FORMATS["tools"])["train"][0]
    assert [m["role"] for m in row["messages"]] == ["user", "function_call", "tool", "assistant"]
    assert json.loads(row["messages"][1]["content"]) == {"name": "weather", "arguments": {"city": "city 0"}}
    assert json.loads(row["tools"])[0]["function"]["name"] == "weather"


def test_trl_text_trains_sft_on_every_token_and_prompt_completion_on_the_completion_only():
    from tunekit.models import load_tokenizer

    tokenizer = load_tokenizer(load_config(None, dataset="identity"))
    text = tk.load_data({"stage": "sft"}, tokenizer, data=FORMATS["text"][:2])["train"][0]
    assert text["labels"] == text["input_ids"]
    pair = tk.load_data({"stage": "sft"}, tokenizer, data=FORMATS["prompt_completion"][:2])["train"][0]
    trained = tokenizer.decode([t for t, label in zip(pair["input_ids"], pair["labels"]) if label != -100])
    assert A in trained and QUESTIONS[0][0] not in trained
    assert pair["labels"][0] == -100


def test_the_log_says_per_set_the_format_the_rows_and_what_was_left_out(tmp_path, capsys):
    path = write_jsonl(tmp_path / "pairs.jsonl", FORMATS["implicit_conversational"])
    rows_of("dpo", None, dataset=f"{path},dpo_en_demo", max_samples=5)
    out = capsys.readouterr().out
    assert (f"dataset '{path}' (a file): trl preference (conversational), implicit prompt: 5 rows (the first 5 of 8: "
            "max_samples=5); the prompt is the turns the chosen and rejected conversations share") in out
    assert "dataset 'dpo_en_demo' (bundled): sharegpt, as its dataset_info.json entry says: 5 rows" in out


def test_a_registered_entry_says_what_to_read_and_nothing_is_detected(tmp_path):
    """An entry with alpaca columns mapped onto other names: read as the entry says, not as the columns look."""
    from conftest import write_dataset

    write_dataset(tmp_path, "mine", [{"prompt": "Hi", "completion": "Hello!"}],
                  {"columns": {"prompt": "completion", "response": "prompt"}})
    row = rows_of("sft", None, dataset="mine", dataset_dir=str(tmp_path))["train"][0]
    assert row["messages"] == [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi"}]


# ---------------------------------------------------------------------------------------------
# where the rows come from
# ---------------------------------------------------------------------------------------------


def test_a_file_a_folder_a_path_under_dataset_dir_and_a_comma_list_mixing_them(tmp_path):
    write_jsonl(tmp_path / "folder" / "a.jsonl", FORMATS["alpaca"][:3])
    write_jsonl(tmp_path / "folder" / "b.jsonl", FORMATS["alpaca"][3:5])
    write_jsonl(tmp_path / "data" / "extra.jsonl", FORMATS["openai"][:4])
    assert len(rows_of("sft", None, dataset=str(tmp_path / "folder"))["train"]) == 5
    assert len(rows_of("sft", None, dataset="extra.jsonl", dataset_dir=str(tmp_path / "data"))["train"]) == 4
    identity = len(rows_of("sft", None, dataset="identity")["train"])
    mixed = rows_of("sft", None, dataset=f"identity, {tmp_path / 'folder'}, extra.jsonl",
                    dataset_dir=str(tmp_path / "data"))["train"]
    assert len(mixed) == identity + 5 + 4


def test_a_registered_name_wins_over_a_same_named_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "identity", FORMATS["alpaca"])  # a file called identity in the current folder
    bundled = rows_of("sft", None, dataset="identity")["train"]
    assert len(bundled) != 8 and bundled[0]["messages"][0]["content"] != Q


def saved(tmp_path: Path, name: str, splits: dict[str, list[dict]]) -> Path:
    import datasets

    folder = tmp_path / name
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(folder))
    return folder


def test_a_folder_save_to_disk_wrote_is_read_with_its_split(tmp_path):
    import datasets

    folder = saved(tmp_path, "saved", {"train": FORMATS["preference"][:6], "test": FORMATS["preference"][6:]})
    assert len(rows_of("dpo", None, dataset=str(folder))["train"]) == 6
    assert len(rows_of("dpo", None, dataset=str(folder), dataset_split="test")["train"]) == 2
    datasets.Dataset.from_list(FORMATS["text"]).save_to_disk(str(tmp_path / "one"))
    assert len(rows_of("pt", None, dataset=str(tmp_path / "one"))["train"]) == 8


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The hub, for the ids ``org/pairs`` and ``org/math``: datasets.load_dataset is given saved local sets."""
    import datasets

    import tunekit.hub

    sets = {"org/pairs": saved(tmp_path, "pairs", {"train": FORMATS["implicit_conversational"][:5],
                                                   "test": FORMATS["implicit_conversational"][5:]}),
            "org/math": saved(tmp_path, "math", {"train": FORMATS["prompt"]})}
    asked = []

    def load_dataset(path, name=None, split=None, **kwargs):
        asked.append((path, split))
        return datasets.load_from_disk(str(sets[path]))[split]

    monkeypatch.setattr(tunekit.hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return asked


def test_a_hub_id_with_a_split_in_its_name_or_from_dataset_split(hub):
    assert len(rows_of("dpo", None, dataset="org/pairs")["train"]) == 5
    assert len(rows_of("dpo", None, dataset="org/pairs:test")["train"]) == 3
    assert len(rows_of("dpo", None, dataset="org/pairs", dataset_split="test")["train"]) == 3
    assert hub == [("org/pairs", "train"), ("org/pairs", "test"), ("org/pairs", "test")]


def test_a_hub_id_offline_is_one_line_that_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"dataset 'trl-lib/Capybara' lives on the hub .*unreachable"):
        rows_of("sft", None, dataset="trl-lib/Capybara")


def test_rows_in_memory_as_a_list_a_dataframe_a_dataset_and_a_datasetdict():
    import datasets
    import pandas as pd

    rows = FORMATS["prompt_completion_conversational"]
    for data in (rows, pd.DataFrame(rows), datasets.Dataset.from_list(rows)):
        train = rows_of("sft", data)["train"]
        assert len(train) == 8 and train[0]["messages"] == [USER, ANSWER]
    both = rows_of("sft", datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:6]),
                                                "validation": datasets.Dataset.from_list(rows[6:])}))
    assert (len(both["train"]), len(both["eval"])) == (6, 2)


def test_a_dataframe_from_parquet_with_numpy_values_reads_as_plain_rows(tmp_path):
    import pandas as pd

    pd.DataFrame(FORMATS["unpaired_conversational"]).to_parquet(tmp_path / "u.parquet")
    frame = pd.read_parquet(tmp_path / "u.parquet")  # lists of messages are numpy arrays here
    train = rows_of("kto", frame)["train"]
    assert train[1] == {"prompt": [{"role": "user", "content": QUESTIONS[1][0]}],
                        "completion": [{"role": "assistant", "content": QUESTIONS[1][1]}], "label": True}


def test_bad_rows_in_memory_get_one_line():
    import pandas as pd

    with pytest.raises(DataError, match="the DataFrame given in memory has no rows"):
        tk.train({"stage": "sft", "output_dir": "unused"}, data=pd.DataFrame())
    with pytest.raises(DataError, match=r"row 2 is a str, not a dict"):
        tk.train({"stage": "sft", "output_dir": "unused"}, data=[FORMATS["alpaca"][0], "a row"])
    with pytest.raises(DataError, match=r"memory:list-\w+' row 1: label must be true or false"):
        rows_of("kto", [{"prompt": "Hi", "completion": "Yo", "label": "maybe"}])


def test_val_size_holds_out_at_least_one_row_as_llamafactory_does():
    parts = rows_of("sft", FORMATS["alpaca"] * 2, val_size=0.05)  # 16 rows: 0.8 of a row rounds up to one
    assert (len(parts["train"]), len(parts["eval"])) == (15, 1)


def test_the_data_panel_shows_what_was_read():
    import pandas as pd
    from tunekit.widgets import DataPanel

    panel = DataPanel({"stage": "sft"}, data=pd.DataFrame(FORMATS["prompt_completion"]))
    assert panel.read == [f"dataset '{panel.config.dataset}' (rows in memory): trl prompt-completion (standard): 8 rows"]
    assert "trl prompt-completion (standard): 8 rows" in panel.summary.value
    assert Q in panel.view.value


def test_the_config_and_train_panels_take_rows_in_memory(tmp_path):
    from tunekit.widgets import ConfigPanel, TrainPanel

    rows = FORMATS["alpaca"]
    form = ConfigPanel({"stage": "sft"}, data=rows)
    assert form.config.dataset.startswith("memory:list-")
    saved_config = yaml.safe_load(Path(form.save(tmp_path / "mine.yaml")).read_text())  # the rows go beside it
    assert [json.loads(line) for line in Path(saved_config["dataset"]).read_text().splitlines()] == rows
    assert Path(saved_config["dataset"]).parent == tmp_path / "mine_rows"
    assert TrainPanel({"stage": "sft"}, data=rows).config.dataset.startswith("memory:list-")


# ---------------------------------------------------------------------------------------------
# training every stage on them: tk.train, and `tunekit train key=value ...` with no YAML
# ---------------------------------------------------------------------------------------------

REWARDS = "def says_four(prompts, responses):\n    return [float('4' in r) for r in responses]\n"
STAGES = {  # stage: (format, keys)
    "pt": ("text", {}),
    "sft": ("prompt_completion_conversational", {}),
    "rm": ("preference", {}),
    "dpo": ("implicit_conversational", {}),
    "kto": ("unpaired", {}),
    "grpo": ("prompt", {"num_generations": 2, "max_new_tokens": 4, "reward_funcs": "accuracy"}),
    "ppo": ("prompt_conversational", {"reward_model_type": "function", "reward_model": "your_data_rewards:says_four",
                                      "max_new_tokens": 4}),
    "rloo": ("prompt", {"num_generations": 2, "max_new_tokens": 4, "reward_funcs": "accuracy"}),
    "distill": ("prompt_completion", {"teacher_model": "tiny-random-llama", "max_new_tokens": 4}),
}


def keys_for(stage: str, out: Path) -> dict:
    return {"stage": stage, "model_name_or_path": "tiny-random-llama", "output_dir": str(out), "cutoff_len": 96,
            "per_device_train_batch_size": 2, "max_steps": 1, "report_to": "none", **STAGES[stage][1]}


def sources(tmp_path: Path, rows: list[dict]):
    """The same rows as a file, a folder, a saved Dataset, a DataFrame and a Dataset: (dataset key, data)."""
    import datasets
    import pandas as pd

    write_jsonl(tmp_path / "folder" / "rows.jsonl", rows)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    return [(write_jsonl(tmp_path / "rows.jsonl", rows), None), (str(tmp_path / "folder"), None),
            (str(tmp_path / "saved"), None), (None, pd.DataFrame(rows)), (None, datasets.Dataset.from_list(rows))]


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_trains_through_tk_train_on_each_source(stage, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "your_data_rewards.py").write_text(REWARDS)
    index = list(STAGES).index(stage)
    dataset, data = sources(tmp_path, FORMATS[STAGES[stage][0]])[index % 5]  # each source, turn by turn
    keys = keys_for(stage, tmp_path / "out") | ({"dataset": dataset} if dataset else {})
    result = tk.train(keys, data=data)
    assert result.trainer.state.global_step == 1
    log = tk.read_log(result.log_path)
    assert any("loss" in r or "reward" in r for r in log)
    saved_config = yaml.safe_load((tmp_path / "out" / "training_args.yaml").read_text())
    assert saved_config["stage"] == stage and saved_config["dataset"]


def _cli(stage: str, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True)
    (folder / "your_data_rewards.py").write_text(REWARDS)
    path = write_jsonl(folder / "rows.jsonl", FORMATS[STAGES[stage][0]])
    keys = [f"{k}={v}" for k, v in {**keys_for(stage, folder / "out"), "dataset": path}.items()]
    return run_cli("train", *keys, cwd=folder)  # the rewards' module is found in the working folder


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Every stage through `tunekit train key=value ...`."""
    root = tmp_path_factory.mktemp("cli")
    return {stage: (_cli(stage, root / stage), root / stage) for stage in STAGES}


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_trains_from_the_cli_on_a_file_with_keys_and_no_yaml(stage, cli_runs):
    proc, folder = cli_runs[stage]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"dataset '{folder / 'rows.jsonl'}' (a file): trl" in proc.stdout + proc.stderr
    assert "[tunekit] plan: about " in proc.stdout and "plan against measurement" in proc.stdout  # before and after
    state = json.loads((folder / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 1


def test_rows_in_memory_are_written_beside_the_outputs_and_the_saved_yaml_repeats_the_run(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(FORMATS["prompt_completion"])
    keys = keys_for("sft", tmp_path / "first") | {"max_steps": 2, "logging_steps": 1}
    first = tk.train(keys, data=frame)
    config = tmp_path / "first" / "training_args.yaml"
    saved_config = yaml.safe_load(config.read_text())
    assert "given in memory" in config.read_text()
    written = Path(saved_config["dataset"])
    assert written.parent == tmp_path / "first" / "dataset"
    assert [json.loads(line) for line in written.read_text().splitlines()] == FORMATS["prompt_completion"]
    again = run_cli("train", config, f"output_dir={tmp_path / 'again'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    losses = [[r["loss"] for r in tk.read_log(folder) if "loss" in r] for folder in (first.output_dir, tmp_path / "again")]
    assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_a_datasetdict_in_memory_trains_on_train_and_evaluates_on_its_test_split(tmp_path):
    import datasets

    rows = FORMATS["alpaca"]
    data = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:6]),
                                 "test": datasets.Dataset.from_list(rows[6:])})
    result = tk.train(keys_for("sft", tmp_path / "out"), data=data)
    assert "eval_loss" in result.metrics
    saved_config = yaml.safe_load((tmp_path / "out" / "training_args.yaml").read_text())
    assert Path(saved_config["eval_dataset"]).read_text().count("\n") == 2
    measured = tk.evaluate(keys_for("sft", tmp_path / "out"), data=data, measures="perplexity")
    assert measured.rows == 2 and set(measured.measures["perplexity"]) == {"base", "tuned"}


def test_tokenized_path_works_for_rows_in_memory(tmp_path):
    keys = keys_for("dpo", tmp_path / "out") | {"tokenized_path": str(tmp_path / "tokens")}
    saved_rows = tk.train(keys, data=FORMATS["preference"])
    assert saved_rows.metrics["saved_rows"]
    result = tk.train(keys, data=FORMATS["preference"])  # trains on the saved rows
    assert result.trainer.state.global_step == 1
