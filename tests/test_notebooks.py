"""Every notebook runs headless, top to bottom, in smoke mode (TUNEKIT_SMOKE=1: the tiny model, two steps).

They run in order in one folder, as a workshop would: 04_ppo finds 03's reward model, 05_dpo 02's adapter,
08_distill 07's GRPO model (its teacher). Each stage notebook (01-08) ends with ``tk.evaluate``: a before/after on held-out rows, in saves/<stem>/eval.
"""

import json
import re
from pathlib import Path

import nbformat
import yaml
import pytest
from nbclient import NotebookClient

from conftest import ROOT, forked_kernel_manager, load_tool

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = ["00_quickstart", "01_pretrain", "02_sft", "03_reward_model", "04_ppo", "05_dpo", "06_kto", "07_grpo",
         "08_distill"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def workshop(tmp_path_factory):
    return tmp_path_factory.mktemp("workshop")


def test_there_is_one_notebook_per_stage():
    assert [path.stem for path in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_parameters_cell_and_no_stored_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "SMOKE" in tagged[0].source and "MAX_STEPS" in tagged[0].source
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")  # committed clean
    assert notebook.cells[0].cell_type == "markdown" and len(notebook.cells[0].source) > 300  # says what it is for


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, workshop, monkeypatch):
    monkeypatch.setenv("TUNEKIT_SMOKE", "1")
    notebook = nbformat.read(path, as_version=4)
    execute(notebook, workshop)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    views = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) >= 3  # at least the config, data and train panels
    assert notebook.metadata["widgets"]  # widget state is saved with the notebook
    # a static copy for viewers without widgets: the training chart as a picture
    assert any("data:image/png;base64" in o["data"].get("text/html", "") for o in views)
    saved = yaml_of(workshop, path.stem)
    assert saved["model_name_or_path"] == "tiny-random-llama"
    text = "".join(o.get("text", "") for o in outputs)
    assert f"tunekit train saves/{path.stem}.yaml" in text  # ends with the CLI line that reproduces the run
    assert f"tunekit export --adapter saves/{path.stem}" in text  # and the one that takes the model out
    run = workshop / "saves" / path.stem
    assert (run / "trainer_log.jsonl").is_file()
    records = [json.loads(line) for line in (run / "trainer_log.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2
    if path.stem != "00_quickstart":  # every stage notebook ends with a before/after on held-out rows
        assert "## Before and after, on held-out rows" in "".join(c.source for c in notebook.cells)
        measured = json.loads((run / "eval" / "eval_results.json").read_text())
        assert measured["rows"] > 0
        assert any(sides.get("base") is not None and sides.get("tuned") is not None
                   for sides in measured["measures"].values()), measured
        assert "held-out rows" in text  # evaluation.table() printed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ends_with_exercises_that_each_change_a_key_and_say_what_to_expect(path):
    notebook = nbformat.read(path, as_version=4)
    last = notebook.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Try next"), path.stem
    exercises = re.findall(r"^\d\. (.+?)(?=^\d\. |\Z)", last.source, flags=re.M | re.S)
    assert 2 <= len(exercises) <= 4, exercises
    for exercise in exercises:
        assert "`" in exercise  # names the key or the call to change
        assert re.search(r"\b(expect|see|watch|shows?|how few)\b", exercise, flags=re.I), exercise  # and what to look for


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_is_about_the_lesson(path):
    """The plumbing every notebook shares is one line each in the library (tunekit/notebook.py)."""
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "report_to" not in code  # "none" is the default
    assert "import os" not in code and "os.environ" not in code  # the smoke switch is tk.smoke
    assert "tk.smoke(" in code and "tk.where_things_are(" in notebook.cells[-2].source
    assert "print(" not in notebook.cells[-2].source  # the closing cell prints through the library


def execute(notebook, folder: Path) -> None:
    """Run every cell in a kernel whose working folder is ``folder``; raises on any cell's error. The kernel is
    forked from a process that has imported the libraries (conftest.forked_kernel_manager)."""
    NotebookClient(notebook, timeout=600, kernel_name="python3", kernel_manager_class=forked_kernel_manager(),
                   resources={"metadata": {"path": str(folder)}}).execute()


def yaml_of(folder: Path, stem: str) -> dict:
    import yaml

    return yaml.safe_load((folder / "saves" / f"{stem}.yaml").read_text())


def test_ppo_notebook_builds_a_small_reward_model_when_03_was_not_run_and_runs_its_kl_off_section_when_asked(
        tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEKIT_SMOKE", "1")
    notebook = nbformat.read(ROOT / "notebooks" / "04_ppo.ipynb", as_version=4)
    notebook = load_tool("workshop_check").with_parameters(notebook, {"KL_OFF_STEPS": 24})  # as papermill injects it
    execute(notebook, tmp_path)
    text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "run 03_reward_model.ipynb first" in text
    assert (tmp_path / "saves" / "03_reward_model" / "adapter_config.json").is_file()
    # the reward-hacking section: a second run whose KL coefficient stays 0, judged with a check the judge never saw
    assert "Skipped" not in text and "kl_k3 at its highest" in text
    records = [json.loads(line) for line in (tmp_path / "saves" / "04_ppo_kl_off" / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["kl_coef"] for r in records if "kl_coef" in r] == [0.0, 0.0]  # 24 steps, 2 in smoke mode
    measured = json.loads((tmp_path / "saves" / "04_ppo_kl_off" / "eval" / "eval_results.json").read_text())
    assert {"accuracy", "repetition", "judge_score"} <= set(measured["measures"]) and measured["win_rate"]


def test_ppo_notebook_skips_its_kl_off_section_by_default():
    notebook = nbformat.read(ROOT / "notebooks" / "04_ppo.ipynb", as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert "KL_OFF_STEPS = 0" in parameters.source  # 20 more minutes: not within the notebook's 10
    section = [c.source for c in notebook.cells
               if c.cell_type == "code" and "KL_OFF_STEPS" in c.source and "ppo_init_kl_coef" in c.source]
    assert len(section) == 1 and '"ppo_init_kl_coef": 0.0' in section[0] and '"ppo_target": 0.0' in section[0]


def test_smoke_swaps_the_model_and_every_count_only_in_smoke_mode(monkeypatch):
    import tunekit as tk

    monkeypatch.delenv("TUNEKIT_SMOKE", raising=False)
    assert tk.smoke("smollm2-135m-instruct", 30, 300) == ("smollm2-135m-instruct", 30, 300)
    assert tk.smoke("smollm2-135m-instruct", 30, on=True) == ("tiny-random-llama", 2)
    assert tk.smoke(1, on=True) == 1 and tk.smoke(40) == 40  # one value comes back as itself
    monkeypatch.setenv("TUNEKIT_SMOKE", "1")
    assert tk.smoke("my/model", 24, 40) == ("tiny-random-llama", 2, 2)


def test_trained_finds_an_adapter_or_a_model_and_nothing_else(tmp_path):
    import tunekit as tk

    assert tk.trained(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    assert tk.trained(tmp_path / "empty") is None
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert tk.trained(tmp_path / "adapter") == str(tmp_path / "adapter")


def test_where_things_are_prints_the_commands_for_the_stage(tmp_path, capsys):
    import tunekit as tk
    from tunekit.run import TrainResult

    out = tmp_path / "saves" / "04_ppo"
    out.mkdir(parents=True)
    (out / "adapter_model.safetensors").write_text("")
    config = tmp_path / "04_ppo.yaml"
    config.write_text("stage: ppo\nfinetuning_type: lora\n")
    commands = tk.where_things_are(config, TrainResult(output_dir=str(out), metrics={}, log_path=""))
    printed = capsys.readouterr().out
    assert "adapter_model.safetensors" in printed and f"tunekit train {config}" in printed
    assert not any("torchrun" in c for c in commands)  # PPO runs in one process
    assert f"tunekit export --adapter {out} --export-dir {out}-export --gguf q8_0" in commands
    config.write_text("stage: rm\nfinetuning_type: full\n")
    commands = tk.where_things_are(config, TrainResult(output_dir=str(out), metrics={}, log_path=""))
    assert any(c.startswith("torchrun --nproc_per_node 2 -m tunekit train") for c in commands)
    assert commands[-1] == f"tunekit export --model {out} --export-dir {out}-merged"  # a scorer: merged, no GGUF


def run_smoke(name: str, folder: Path, monkeypatch, **values):
    monkeypatch.setenv("TUNEKIT_SMOKE", "1")
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    if values:
        notebook = load_tool("workshop_check").with_parameters(notebook, values)  # as papermill injects them
    execute(notebook, folder)
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


def test_grpo_notebook_trains_and_compares_its_variants_when_asked(tmp_path, monkeypatch):
    text = run_smoke("07_grpo", tmp_path, monkeypatch, COMPARE=True)
    assert "Skipped" not in text
    for name, stage in (("dr_grpo", "grpo"), ("gspo", "grpo"), ("rloo", "rloo")):
        run = tmp_path / "saves" / f"07_grpo_{name}"
        saved = yaml.safe_load((run / "training_args.yaml").read_text())
        assert saved["stage"] == stage and saved["max_steps"] == 2, name
        assert json.loads((run / "eval" / "eval_results.json").read_text())["rows"] > 0
    assert yaml.safe_load((tmp_path / "saves" / "07_grpo_dr_grpo" / "training_args.yaml").read_text())["loss_type"] == "dr_grpo"
    assert text.count("right ") >= 4 and "change 95%" in text  # one line per variant


def test_grpo_notebook_skips_its_comparison_by_default():
    notebook = nbformat.read(ROOT / "notebooks" / "07_grpo.ipynb", as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert "COMPARE = False" in parameters.source  # 20 more minutes: not within the notebook's 10


def test_distill_notebook_trains_its_teacher_when_07_was_not_run(tmp_path, monkeypatch):
    text = run_smoke("08_distill", tmp_path, monkeypatch)
    assert "run 07_grpo.ipynb first" in text
    assert (tmp_path / "saves" / "07_grpo" / "adapter_config.json").is_file()
    assert (tmp_path / "saves" / "08_sft_on_teacher" / "adapter_config.json").is_file()  # the off-policy student
    for folder in ("eval", "eval_against_07_grpo", "eval_against_08_sft_on_teacher"):
        assert json.loads((tmp_path / "saves" / "08_distill" / folder / "eval_results.json").read_text())["rows"] > 0
