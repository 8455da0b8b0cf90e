"""Every bad input of the catalogue (tests/bad_inputs.py) gets its one clear answer, from Python and from the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tunekit as tk
from bad_inputs import CASES, WARNINGS

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "docs" / "errors.json"  # the messages the docs' troubleshooting page shows (docs/_ext/tunekit_docs.py)


def test_the_catalogue_is_big_and_its_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


def _config_path(tmp: Path, built) -> Path:
    if isinstance(built, Path):
        return built
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(built, sort_keys=False))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_train_raises_the_catalogued_error(case, tmp_path, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    built = case.build(tmp_path)
    with pytest.raises(getattr(tk, case.error)) as caught:
        tk.train(str(built) if isinstance(built, Path) else built)
    message = str(caught.value)
    assert "\n" not in message
    for word in case.words:
        assert word in message, f"{word!r} not in: {message}"
    shown = as_documented(message, tmp_path)
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    if os.environ.get("TUNEKIT_RECORD_ERRORS") == "1":
        RECORDED.write_text(json.dumps({**recorded, case.id: shown}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    else:
        assert recorded.get(case.id) == shown, ("docs/errors.json shows another message for this case: record it again "
                                                "with TUNEKIT_RECORD_ERRORS=1 pytest tests/test_bad_inputs.py")


def as_documented(message: str, folder: Path) -> str:
    """The message as the troubleshooting page shows it: the test's own folders as a reader's placeholders."""
    from tunekit.home import cache_home

    for path, name in ((folder, "<folder>"), (ROOT, "<repo>"), (cache_home(), "<TUNEKIT_HOME>"),
                       (Path.home(), "~")):
        message = message.replace(str(path), name)
    return message


def _run_cli(case, folder: Path) -> subprocess.CompletedProcess:
    """``case`` through a real `python -m tunekit train` process."""
    folder.mkdir(parents=True)
    config = _config_path(folder, case.build(folder))
    env = {**os.environ, **case.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tunekit", "train", str(config)], capture_output=True, text=True,
                          cwd=folder, env=env, timeout=600)


def _run_cli_forked(cases, root: Path) -> dict[str, subprocess.CompletedProcess]:
    """Every case through `tunekit train` in a process of its own, forked from one that has already imported what
    a run imports (tests/cli_forks.py): the same answers as fresh processes, without 122 start-ups. One forking
    process per environment, two at a time."""
    groups: dict = {}
    for case in cases:
        folder = root / case.id
        folder.mkdir(parents=True)
        job = {"config": str(_config_path(folder, case.build(folder))), "cwd": str(folder), "out": str(folder / "cli")}
        groups.setdefault(tuple(sorted(case.env.items())), []).append((case.id, job))
    runs = []
    for n, (env, jobs) in enumerate(groups.items()):
        for half in (jobs[::2], jobs[1::2]):
            if half:
                listing = root / f"jobs-{n}-{len(runs)}.json"
                listing.write_text(json.dumps([job for _, job in half]))
                runs.append((half, listing, subprocess.Popen(
                    [sys.executable, str(ROOT / "tests" / "cli_forks.py"), str(listing)],
                    env={**os.environ, **dict(env), "PYTHONPATH": str(ROOT)})))
    answers = {}
    for half, listing, process in runs:
        assert process.wait(timeout=1800) == 0
        codes = json.loads(Path(str(listing) + ".codes").read_text())
        for (case_id, job), code in zip(half, codes):
            answers[case_id] = subprocess.CompletedProcess(
                ["tunekit", "train", job["config"]], code, Path(job["out"] + ".stdout").read_text(),
                Path(job["out"] + ".stderr").read_text())
    return answers


@pytest.fixture(scope="module")
def cli_answers(tmp_path_factory):
    """Every case through `tunekit train` (see _run_cli_forked)."""
    return _run_cli_forked(CASES, tmp_path_factory.mktemp("cli"))


@pytest.mark.parametrize("case_id", ["unknown_key_did_you_mean", "jsonl_with_one_bad_line", "model_folder_without_config"]
                         + [c.id for c in CASES if c.env][:1])
def test_a_forked_cli_process_answers_as_a_fresh_one(case_id, cli_answers, tmp_path):
    """The forked processes stand for fresh ones: a few cases (a config error, a data error, a model error and one
    with its own environment) run as real `python -m tunekit` processes give the same exit code and stderr."""
    case = next(c for c in CASES if c.id == case_id)
    fresh = _run_cli(case, tmp_path / "fresh")
    forked = cli_answers[case_id]
    assert fresh.returncode == forked.returncode
    folder = Path(forked.args[2]).parent
    assert fresh.stderr.replace(str(tmp_path / "fresh"), "<folder>") == forked.stderr.replace(str(folder), "<folder>")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_answers_in_one_line_with_exit_code_2(case, cli_answers):
    proc = cli_answers[case.id]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("tunekit: error: ")
    for word in case.words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"


@pytest.mark.parametrize("case", WARNINGS, ids=[w.id for w in WARNINGS])
def test_inputs_that_train_with_a_warning(case, tmp_path):
    config = case.build(tmp_path)
    with pytest.warns(UserWarning) as caught:
        result = tk.train(config)
    assert result.trainer.state.global_step == config["max_steps"]
    messages = [str(w.message) for w in caught]
    assert any(all(word in m for word in case.words) for m in messages), messages

    cli_dir = tmp_path / "cli"
    cli_dir.mkdir()
    proc = subprocess.run([sys.executable, "-m", "tunekit", "train", str(_config_path(cli_dir, case.build(cli_dir)))],
                          capture_output=True, text=True, cwd=cli_dir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = [line for line in proc.stderr.splitlines() if line.startswith("tunekit: warning:")]
    assert any(all(word in line for word in case.words) for line in warned), proc.stderr[-3000:]
