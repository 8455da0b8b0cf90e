"""The errors tunekit answers with, and the two helpers that word them.

Every ``TunekitError`` is printed by the CLI as one line (exit code 2): its message names the key, the
file or the row, and the fix.
"""

from __future__ import annotations

import warnings
from pathlib import Path


class TunekitError(Exception):
    """Base of the errors that the CLI prints as one line (exit code 2)."""


class ConfigError(TunekitError, ValueError):
    """A config key has a bad value, is unknown, or clashes with another key."""


class DataError(TunekitError, ValueError):
    """A data set cannot be found, read or converted."""


class TrainingError(TunekitError, RuntimeError):
    """Training cannot go on (a NaN or infinite loss); the checkpoints already written are kept."""


def warn(message: str, stacklevel: int = 3) -> None:
    warnings.warn(message, UserWarning, stacklevel=stacklevel)


def error_reason(err: Exception, path: object = None) -> str:
    """The telling line of a library's error (a size mismatch, say), shortened, for a one-line message.

    ``path``, which the message names already, is said by its last part only, so that the line is as long
    (and cut at the same word) wherever the file lies."""
    text = str(err) if path is None else str(err).replace(str(path), Path(str(path)).name)
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [type(err).__name__]
    line = next((line for line in lines if "mismatch" in line), lines[0])
    return line if len(line) <= 160 else line[:157] + "..."
