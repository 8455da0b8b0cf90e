"""Pages generated from the code at build time, so that they cannot drift from it.

- ``{config-reference}``: every key ``Config`` accepts, by section, with its type, default and the one-line comment
  beside it in ``tunekit/config.py``; then the LLaMA-Factory keys accepted and ignored, with why. A key without a
  comment fails the build.
- ``{config-keys}``: the same rows for the keys named in the directive's body (a stage page's keys); an unknown key
  fails the build.
- ``{error-catalogue}``: the errors a user can meet, from the bad-input catalogue (``tests/bad_inputs.py``) and the
  messages its test recorded in ``docs/errors.json`` (``tests/test_bad_inputs.py`` checks they are current).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import re
import tokenize
import typing
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
logger = logging.getLogger(__name__)


@functools.cache  # read once per build: the reference and every stage page's key table use it
def config_rows() -> tuple[dict, ...]:
    """One row per ``Config`` field: section, key, type, default and comment, in the order of ``config.py``."""
    from tunekit.config import Config

    source = (ROOT / "tunekit" / "config.py").read_text(encoding="utf-8")
    comments, sections, section = {}, {}, ""
    names = {f.name for f in dataclasses.fields(Config)}
    in_class = False
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string == "Config" and tok.line.startswith("class Config"):
            in_class = True
        if not in_class:
            continue
        if tok.type == tokenize.COMMENT and tok.line.strip().startswith("# ---"):
            section = tok.string.strip("# -").strip()
        elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names and ":" in tok.line \
                and tok.string not in comments:
            key = tok.string
            trailing = tok.line.split("#", 1)[1].strip() if "  #" in tok.line else ""
            comments[key], sections[key] = trailing, section
        elif tok.type == tokenize.NAME and tok.string == "def" and tok.start[1] == 4:
            break
    hints = typing.get_type_hints(Config)
    rows = []
    for f in dataclasses.fields(Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append({"section": sections.get(f.name, ""), "key": f.name, "type": _type_name(hints[f.name]),
                     "default": default, "comment": comments.get(f.name, "")})
    return tuple(rows)


def ignored_keys() -> dict[str, str]:
    from tunekit.config import _IGNORED

    return dict(_IGNORED)


def _type_name(hint) -> str:
    text = str(hint).replace("typing.", "").replace("NoneType", "None")
    return re.sub(r"<class '(\w+)'>", r"\1", text)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == {} or value == "":
        return "(empty)"
    return f"`{value}`"


def key_table(rows: list[dict]) -> list[str]:
    """Rows as a table whose keys link to their entries in the reference."""
    lines = ["| key | default | what it does |", "|---|---|---|"]
    lines += [f"| {{confval}}`{r['key']}` | {_cell(_default(r['default']))} | {_cell(r['comment'])} |" for r in rows]
    return lines


def key_entries(rows: list[dict]) -> list[str]:
    """Rows as Sphinx ``confval`` entries: the targets of ``{confval}`key``` links from every page."""
    out = []
    for r in rows:
        out += [f"````{{confval}} {r['key']}", f":type: {r['type']}", f":default: {_default(r['default'])}", "",
                r["comment"], "````", ""]
    return out


class _Markdown(SphinxDirective):
    """A directive whose output is Markdown text, parsed as the page is."""

    def markdown(self) -> list[str]:
        raise NotImplementedError

    def run(self):
        box = nodes.container()
        self.state.nested_parse(StringList(self.markdown(), source=self.get_source_info()[0]), self.content_offset, box)
        return box.children


class ConfigReference(_Markdown):
    has_content = False

    def markdown(self) -> list[str]:
        rows = [r for r in config_rows() if r["key"] != "training_args"]
        missing = [r["key"] for r in rows if not r["comment"]]
        if missing:  # a warning: -W (make docs) fails the build on it, naming the keys
            logger.warning(f"config keys without a comment in tunekit/config.py: {', '.join(missing)}",
                           location=self.get_location())
        out: list[str] = []
        for section in dict.fromkeys(r["section"] for r in rows):
            out += ["", f"## {section.capitalize() or 'Other'} keys", ""]
            out += key_entries([r for r in rows if r["section"] == section])
        out += ["", "## LLaMA-Factory keys that tunekit accepts and ignores", "",
                "A config that sets one of these trains; the log says once that the key is ignored, and why.", "",
                "| key | why it is ignored |", "|---|---|"]
        out += [f"| `{k}` | {_cell(why)} |" for k, why in sorted(ignored_keys().items())]
        out += ["", "## Every other `TrainingArguments` key", "",
                "A key of transformers' `TrainingArguments` that has no entry above (`adam_beta2`, `save_only_model`, "
                "...) goes to the trainer unchanged, as in LLaMA-Factory. Any other key is an error that names the "
                "closest key."]
        return out


class ConfigKeys(_Markdown):
    has_content = True

    def markdown(self) -> list[str]:
        wanted = " ".join(self.content).replace(",", " ").split()
        rows = {r["key"]: r for r in config_rows()}
        unknown = [k for k in wanted if k not in rows]
        if unknown:
            raise self.error(f"config-keys: not keys of tunekit's Config: {', '.join(unknown)}")
        return key_table([rows[k] for k in wanted])


def error_rows() -> list[dict]:
    """The catalogue's cases with the messages recorded for them."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from bad_inputs import CASES
    finally:
        sys.path.remove(str(ROOT / "tests"))
    recorded = json.loads((ROOT / "docs" / "errors.json").read_text(encoding="utf-8"))
    rows = []
    for case in CASES:
        if case.id not in recorded:
            logger.warning(f"docs/errors.json has no message for the bad-input case {case.id!r}: run "
                                 "TUNEKIT_RECORD_ERRORS=1 pytest tests/test_bad_inputs.py -k test_train_raises")
            continue
        rows.append({"id": case.id, "error": case.error, "message": recorded[case.id]})
    return rows


class ErrorCatalogue(_Markdown):
    has_content = False

    def markdown(self) -> list[str]:
        out = []
        for r in error_rows():
            out += ["", f"### {r['id'].replace('_', ' ').capitalize()}", "", f"`{r['error']}`:", "", "```text",
                    f"tunekit: error: {r['message']}", "```"]
        return out


def setup(app):
    app.add_directive("config-reference", ConfigReference)
    app.add_directive("config-keys", ConfigKeys)
    app.add_directive("error-catalogue", ErrorCatalogue)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
