"""Where tunekit keeps what it builds once: ``$TUNEKIT_HOME``, else ``~/.cache/tunekit`` (the built-in models, this
machine's measured speed, the plan's model shapes and row lengths)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """``$TUNEKIT_HOME`` or ``~/.cache/tunekit``."""
    return Path(os.environ.get("TUNEKIT_HOME") or Path.home() / ".cache" / "tunekit")
