"""Every bad input of the catalogue (tests/bad_inputs.py) gets its one clear answer, from Python and from the CLI."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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
    folder.mkdir(parents=True)
    config = _config_path(folder, case.build(folder))
    env = {**os.environ, **case.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tunekit", "train", str(config)], capture_output=True, text=True,
                          cwd=folder, env=env, timeout=600)


@pytest.fixture(scope="module")
def cli_answers(tmp_path_factory):
    """Every case through `tunekit train`, three processes at a time (most of each is Python start-up)."""
    root = tmp_path_factory.mktemp("cli")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {case.id: pool.submit(_run_cli, case, root / case.id) for case in CASES}
    return {name: future.result() for name, future in futures.items()}


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
