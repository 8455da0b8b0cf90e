"""The project's own files: pyproject and environment.yml agree; make and CI call what the README says."""

import re
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
