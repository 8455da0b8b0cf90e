"""The documentation site (make docs): it builds strictly, it documents every key the config accepts and every stage,
its strictness catches what it promises to, and the README is a front door whose links all resolve."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from tunekit.config import _IGNORED, KEYS
from tunekit.stages import STAGES

SPHINX = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]  # as `make docs`


def build(source: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*SPHINX, str(source), str(out)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(ROOT / "docs", out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_reference_has_an_entry_for_every_key_the_config_accepts(site):
    page = (site / "config.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="confval-([\w]+)"', page))
    assert documented == set(KEYS)
    for key in _IGNORED:  # accepted and ignored, with why
        assert f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{key}</span></code>" in page, key


def test_every_stage_has_its_page_with_its_keys_and_example(site):
    for name in STAGES:
        page = site / "stages" / f"{name}.html"
        assert page.is_file(), f"docs/stages/{name}.md is missing"
        text = page.read_text(encoding="utf-8")
        assert "../config.html#confval-" in text, f"{name}: no key linked to the reference"
        assert "highlight-yaml" in text, f"{name}: no example YAML"


def test_the_site_covers_every_topic_and_the_troubleshooting_page_shows_every_catalogued_error(site):
    for page in ("getting-started", "notebooks", "data", "models", "config", "evaluation", "export", "multi-process",
                 "speed", "workshop", "troubleshooting", "plan", "panels", "cli"):
        assert (site / f"{page}.html").is_file(), page
    sys.path.insert(0, str(ROOT / "tests"))
    from bad_inputs import CASES

    shown = (site / "troubleshooting.html").read_text(encoding="utf-8")
    for case in CASES[:5] + CASES[-5:]:
        assert case.id.replace("_", " ").capitalize() in shown, case.id


def test_the_rendered_notebooks_are_the_workshop_checks_copies_with_their_outputs(site):
    import nbformat

    copies = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
    assert [c.name for c in copies] == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")), \
        "every notebook has its executed copy: python tools/workshop_check.py notebooks/NAME.ipynb publishes it"
    code = lambda path: [c.source for c in nbformat.read(path, as_version=4).cells  # noqa: E731
                         if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    for copy in copies:
        assert code(copy) == code(ROOT / "notebooks" / copy.name), \
            f"docs/notebooks/{copy.name} shows an older version of the notebook: run the workshop check on it again"
        page = (site / "notebooks" / f"{copy.stem}.html").read_text(encoding="utf-8")
        text = re.sub(r"<[^>]+>", "", page)
        assert "workshop-check" in text and "ran it on" in text and "min with its own" in text, copy.name
        assert page.count('class="cell_output') >= 3, copy.name  # shown with its outputs, not run at build time


@pytest.mark.parametrize("breakage", ["broken link", "page outside the navigation", "unknown key"])
def test_a_strict_build_fails_on_what_it_promises_to_catch(breakage, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("_build", "notebooks"))
    for name in ("examples", "tunekit", "tests"):  # what the pages include and generate from, as in the repository
        (tmp_path / name).symlink_to(ROOT / name)
    (docs / "notebooks.md").write_text(re.sub(r"```\{toctree\}.*?```", "", (docs / "notebooks.md").read_text(),
                                              flags=re.S))
    page = docs / "getting-started.md"
    if breakage == "broken link":
        page.write_text(page.read_text() + "\n\nSee [the missing page](no-such-page.md).\n")
    elif breakage == "page outside the navigation":
        (docs / "orphan.md").write_text("# An orphan\n\nNo toctree names me.\n")
    else:
        page.write_text(page.read_text() + "\n\n```{config-keys}\nlearning_rat\n```\n")
    done = build(docs, tmp_path / "out")
    assert done.returncode != 0
    said = {"broken link": "no-such-page", "page outside the navigation": "orphan",
            "unknown key": "learning_rat"}[breakage]
    assert said in done.stderr


def test_the_readme_is_a_front_door_whose_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = target.split("#")[0]
        assert not path or (ROOT / path).exists(), f"README links to {target}, which does not exist"
    assert "make docs" in text
