"""tools/workshop_check.py (make workshop-check): runs notebooks headless in full mode, tabulates wall time,
the held-out before/after, pass/fail and the slowest cells, writes JSON, and exits 1 on a failure or an
overrun. Here on small synthetic notebooks (the real ones take most of an hour in full mode)."""

import json

import nbformat
import pytest

from conftest import ROOT, load_tool

workshop_check = load_tool("workshop_check")

WRITES_EVAL = """
import json, os, pathlib
assert os.environ.get("TUNEKIT_SMOKE") is None, "the check runs notebooks in full mode"
folder = pathlib.Path("saves/{stem}/eval"); folder.mkdir(parents=True)
folder.joinpath("eval_results.json").write_text(json.dumps({{
    "stage": "sft", "rows": 15, "measures": {{"perplexity": {{"base": 6.9, "tuned": 1.73}}, "name": {{"base": 0.0, "tuned": 1.0}}}},
    "win_rate": {{"win_rate": 0.72, "wins": 21, "ties": 10, "losses": 5, "without_ties": 0.81}},
    "intervals": {{"name": {{"change": 1.0, "low": 0.9, "high": 1.1}}}}}}))
"""


def notebook(folder, stem, *cells):
    path = folder / f"{stem}.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def books(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    return src


def test_a_passing_notebook_gets_its_before_after_and_slowest_cell(books, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNEKIT_SMOKE", "1")  # the check must remove it
    path = notebook(books, "02_sft", WRITES_EVAL.format(stem="02_sft"), "import time; time.sleep(1.5)", "x = 1")
    out = tmp_path / "check"
    assert workshop_check.main([str(path), "--folder", str(out), "--budget", "120"]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["notebook"] for r in rows] == ["02_sft"] and rows[0]["passed"] and rows[0]["failure"] is None
    measured = rows[0]["before_after"]
    assert measured["measures"]["perplexity"] == {"base": 6.9, "tuned": 1.73} and measured["win_rate"] == 0.72
    assert rows[0]["slowest_cells"][0]["cell"] == 1 and rows[0]["slowest_cells"][0]["seconds"] >= 1.4
    assert (out / "02_sft.ipynb").is_file()  # the executed copy, outputs and all
    printed = capsys.readouterr().out
    assert "| 02_sft |" in printed and "perplexity 6.9 -> 1.73" in printed and "win rate 0.72 (0.81 ties apart)" in printed
    assert "name 0 -> 1 (change +1, 95% [+0.9, +1.1])" in printed
    assert "1 of 1 notebooks passed" in printed


def test_a_failing_notebook_fails_the_check_and_the_rest_still_run(books, tmp_path, capsys):
    # the budget is generous: whether the fine notebook passes must not hang on how fast a kernel starts here
    broken = notebook(books, "01_broken", "raise ValueError('the data folder is missing')")
    fine = notebook(books, "02_fine", "x = 1")
    out = tmp_path / "check"
    assert workshop_check.main([str(broken), str(fine), "--folder", str(out), "--budget", "300"]) == 1
    rows = {r["notebook"]: r for r in json.loads((out / "results.json").read_text())}
    assert not rows["01_broken"]["passed"] and "the data folder is missing" in rows["01_broken"]["failure"]
    assert rows["02_fine"]["passed"] and rows["02_fine"]["before_after"] is None
    printed = capsys.readouterr().out
    assert "FAIL" in printed and "1 of 2 notebooks passed" in printed


def test_a_cell_past_the_budget_is_stopped_and_fails_the_check(books, tmp_path):
    slow = notebook(books, "01_slow", "import time; time.sleep(120)")  # would take 2 min; the budget stops it at 3 s
    out = tmp_path / "check"
    assert workshop_check.main([str(slow), "--folder", str(out), "--budget", "3"]) == 1
    row = json.loads((out / "results.json").read_text())[0]
    assert not row["passed"] and "budget" in row["failure"] and row["seconds"] < 120
    assert row["slowest_cells"][0]["cell"] == 0 and row["slowest_cells"][0]["seconds"] >= 3


def test_a_notebook_whose_cells_each_fit_but_together_overrun_fails_the_check(books, tmp_path):
    # three cells of 2 s each, each well inside the 5 s a cell may take; together at least 6 s, past the budget
    overlong = notebook(books, "01_overlong", *["import time; time.sleep(2)"] * 3)
    out = tmp_path / "check"
    assert workshop_check.main([str(overlong), "--folder", str(out), "--budget", "5"]) == 1
    row = json.loads((out / "results.json").read_text())[0]
    assert not row["passed"] and "over the budget of 5 s" in row["failure"] and row["seconds"] >= 6


def test_keep_reruns_one_notebook_on_the_earlier_outputs_and_keeps_the_other_rows(books, tmp_path):
    first = notebook(books, "03_rm", "import pathlib; pathlib.Path('saves/03_rm').mkdir(parents=True)")
    second = notebook(books, "04_ppo", "import pathlib; assert pathlib.Path('saves/03_rm').is_dir(), 'run 03 first'")
    out = tmp_path / "check"
    assert workshop_check.main([str(first), "--folder", str(out)]) == 0
    assert workshop_check.main([str(second), "--folder", str(out), "--keep"]) == 0  # 03's output is still there
    assert [r["notebook"] for r in json.loads((out / "results.json").read_text())] == ["03_rm", "04_ppo"]
    assert workshop_check.main([str(second), "--folder", str(out)]) == 1  # without --keep the folder starts empty


def test_the_makefile_and_readme_name_the_check():
    assert "workshop-check:" in (ROOT / "Makefile").read_text()
    assert "tools/workshop_check.py" in (ROOT / "Makefile").read_text()
    assert "make workshop-check" in (ROOT / "README.md").read_text()


def test_seed_sets_the_seed_parameter_after_the_parameters_cell_and_is_recorded(books, tmp_path, capsys):
    path = notebook(books, "07_grpo", "# Parameters: change them here\nSEED = 42", "assert SEED == 7, SEED",
                    WRITES_EVAL.format(stem="07_grpo"))
    out = tmp_path / "check"
    assert workshop_check.main([str(path), "--folder", str(out), "--seed", "7"]) == 0
    [row] = json.loads((out / "results.json").read_text())
    assert row["seed"] == 7 and row["passed"]
    assert "| 07_grpo | 7 |" in capsys.readouterr().out
    assert workshop_check.main([str(path), "--folder", str(out)]) == 1  # without --seed the notebook's own 42 stays


def test_set_injects_any_parameter_as_a_literal_and_the_row_names_it(books, tmp_path, capsys):
    path = notebook(books, "04_ppo", "# Parameters: change them here\nKL_OFF_STEPS = 0\nNAME = 'a'",
                    "assert KL_OFF_STEPS == 24 and NAME == 'b c', (KL_OFF_STEPS, NAME)")
    out = tmp_path / "check"
    assert workshop_check.main([str(path), "--folder", str(out), "--set", "KL_OFF_STEPS=24", "--set", "NAME=b c"]) == 0
    [row] = json.loads((out / "results.json").read_text())
    assert row["parameters"] == {"KL_OFF_STEPS": 24, "NAME": "b c"} and row["passed"]
    assert "| 04_ppo KL_OFF_STEPS=24 NAME=b c |" in capsys.readouterr().out
    assert workshop_check.main([str(path), "--folder", str(out)]) == 1  # without --set the notebook's own values stay
    with pytest.raises(SystemExit):
        workshop_check.main([str(path), "--set", "24"])  # not NAME=VALUE: argparse says so and stops


def test_a_passing_run_is_published_for_the_docs_with_when_where_and_how_long(books, tmp_path):
    path = notebook(books, "02_sft", WRITES_EVAL.format(stem="02_sft"), "print('an output the site must show')")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.cells[0].source = "SEED = 42\n" + nb.cells[0].source
    nbformat.write(nb, path)
    out = tmp_path / "check"
    assert workshop_check.main([str(path), "--folder", str(out)]) == 0
    assert not (ROOT / "docs" / "notebooks" / "02_sft.ipynb").is_file() or (
        "an output the site must show" not in (ROOT / "docs" / "notebooks" / "02_sft.ipynb").read_text())
    [row] = json.loads((out / "results.json").read_text())  # a notebook outside notebooks/ is not published ...
    shown = workshop_check.publish(out / "02_sft.ipynb", row, tmp_path / "docs")  # ... the repository's are, so
    published = nbformat.read(shown, as_version=4)
    note = published.cells[0].source
    assert published.cells[0].cell_type == "markdown" and "make workshop-check" in note
    assert workshop_check.machine() in note and "seed 42" in note and "perplexity 6.9 -> 1.73" in note
    assert any("an output the site must show" in o.get("text", "") for c in published.cells if c.cell_type == "code"
               for o in c.get("outputs", []))
    assert workshop_check.own_seed(published) == 42
    assert "widgets" not in published.metadata  # no live widget state: a static page shows the panels' copies
