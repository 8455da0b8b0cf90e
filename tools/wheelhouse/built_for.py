"""A wheelhouse serves one kind of laptop: the system, CPU and Python that built it.

    python tools/wheelhouse/built_for.py write WHEELHOUSE   # make wheelhouse: record this machine (built-for.json)
    python tools/wheelhouse/built_for.py check WHEELHOUSE   # make install WHEELHOUSE=: is this laptop that kind?

A different system, CPU or Python minor version (3.11 against 3.12) stops the install with one line saying so; a
different patch release (3.11.2 against 3.11.7) is said and the install goes on: most wheels serve every patch
release, but one that asks for a newer one (soupsieve 4.1 wants 3.11.5) stops pip.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

RECORD = "built-for.json"


def this_machine() -> dict:
    return {"system": platform.system(), "machine": platform.machine(), "python": platform.python_version()}


def words(kind: dict) -> str:
    return f"{kind['system']} {kind['machine']}, Python {kind['python']}"


def write(folder: Path) -> None:
    (folder / RECORD).write_text(json.dumps(this_machine()) + "\n")
    with open(folder / "README.md", "a") as readme:
        readme.write(f"\nThis wheelhouse: {words(this_machine())}.\n")


def check(folder: Path) -> None:
    if not (folder / RECORD).is_file():  # a folder of wheels made another way: pip says what is missing
        return
    built, here = json.loads((folder / RECORD).read_text()), this_machine()
    minor = lambda kind: (kind["system"], kind["machine"], kind["python"].rsplit(".", 1)[0])  # noqa: E731
    fix = f"make the wheelhouse on a laptop like this one (make wheelhouse PYTHON=python{minor(here)[2]})"
    if minor(built) != minor(here):
        sys.exit(f"the wheelhouse {folder} is for {words(built)}; this laptop is {words(here)}: {fix}")
    if built["python"] != here["python"]:
        print(f"note: the wheelhouse {folder} was built with Python {built['python']} and this is {here['python']}; "
              f"if pip says a package 'requires a different Python', {fix}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit("usage: python tools/wheelhouse/built_for.py write|check WHEELHOUSE")
    {"write": write, "check": check}[sys.argv[1]](Path(sys.argv[2]))
