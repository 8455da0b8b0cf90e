"""Sphinx configuration of tunekit's documentation site (`make docs`; pages in MyST Markdown, notebooks by MyST-NB)."""

import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "_ext"), str(HERE.parent)]

project = "tunekit"
author = "the tunekit team"
copyright = f"{date.today().year}, {author}"
extensions = ["myst_nb", "tunekit_docs"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links to headings, checked at build time

# The notebooks are shown as the last `make workshop-check` ran them (docs/notebooks/), never run here.
nb_execution_mode = "off"
# A panel's output holds its live widget view and a static copy (HTML, PNG): without a kernel the copy is what shows.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None),
                              ("html", "application/vnd.jupyter.widget-state+json", None)]

html_theme = "furo"
html_title = "tunekit"
html_static_path: list[str] = []
