"""Where a data set comes from. Each item of ``dataset`` / ``eval_dataset`` is, in this order:

1. a name registered in ``dataset_dir/dataset_info.json`` or bundled (a registered name wins over a same-named file);
2. rows given in memory (``tk.train(cfg, data=rows)``: a list of dicts, a pandas DataFrame, a ``datasets.Dataset``
   or ``DatasetDict``), which ``remember`` names ``memory:...``;
3. a path to a file or a folder of files (as given, or under ``dataset_dir``), or a folder ``save_to_disk`` wrote;
4. a hub id, ``org/name`` or ``org/name:split`` (the split is otherwise ``dataset_split``).

Sets that are not registered have their format found from their columns (``detect.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..errors import DataError
from .registry import FILE_TYPES, DatasetEntry, read_registry

MEMORY_PREFIX = "memory:"
_MEMORY: dict[str, list[dict]] = {}  # rows given in memory, by the name ``remember`` gave them (their fingerprint)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")
EVAL_SPLITS = ("eval", "test", "validation")


def find_set(name: str, dataset_dir: str | None, split: str = "train") -> DatasetEntry:
    """The entry ``name`` stands for (see the module's docstring); a ``DataError`` naming what was tried."""
    entries = read_registry(dataset_dir)
    if name in entries:
        return _registered(entries[name], dataset_dir)
    if name.startswith(MEMORY_PREFIX):
        if name not in _MEMORY:
            raise DataError(f"dataset {name!r} was rows in memory of another Python session; give the rows again "
                            "(tk.train(cfg, data=rows)) or the file they were written to")
        return DatasetEntry(name=name, folder=Path("."), source="rows in memory", rows=_MEMORY[name], detect=True)
    path = _path(name, dataset_dir)
    if path is not None:
        return DatasetEntry(name=name, folder=path.parent, file_name=path.name, split=split, detect=True,
                            source="a folder" if path.is_dir() else "a file")
    if _HUB_ID.match(name) and Path(name).suffix.lower() not in FILE_TYPES:
        hub_id, _, named_split = name.partition(":")
        return DatasetEntry(name=name, folder=Path("."), hf_hub_url=hub_id, split=named_split or split,
                            source="a hub id", detect=True)
    info = Path(dataset_dir or ".") / "dataset_info.json"
    where = f" or in {info}" if info.is_file() else ""
    raise DataError(
        f"dataset {name!r} is not registered (bundled{where}), nor a file or folder (none in the current folder or "
        f"in dataset_dir={str(dataset_dir)!r}), nor a hub id (org/name); known: {', '.join(sorted(entries))}"
    )


def _registered(entry: DatasetEntry, dataset_dir: str | None) -> DatasetEntry:
    from .registry import BUNDLED_DIR, FORMATS

    if not (entry.file_name or entry.hf_hub_url):
        raise DataError(f"dataset {entry.name!r} has no 'file_name' or 'hf_hub_url' in dataset_info.json "
                        "(ms_hub_url, om_hub_url and script_url are not supported)")
    if entry.formatting not in FORMATS:
        raise DataError(f"dataset {entry.name!r} has formatting={entry.formatting!r}; use one of: {', '.join(FORMATS)}")
    entry.source = "bundled" if entry.folder == BUNDLED_DIR else f"registered in {entry.folder / 'dataset_info.json'}"
    return entry


def _path(name: str, dataset_dir: str | None) -> Path | None:
    for path in (Path(name), Path(dataset_dir or ".") / name):
        if path.exists():
            return path
    return None


# ---------------------------------------------------------------------------------------------
# rows in memory
# ---------------------------------------------------------------------------------------------


def remember(data: Any) -> dict[str, str]:
    """The ``dataset`` (and ``eval_dataset``) overrides naming rows given in memory: a list of dicts, a pandas
    DataFrame, a ``datasets.Dataset``, or a ``DatasetDict`` whose ``train`` split trains and whose ``eval``, ``test``
    or ``validation`` split is held out. The rows stay in this process, named by their fingerprint."""
    parts = _splits(data)
    names = {}
    for key, (what, rows) in parts.items():
        if not rows:
            raise DataError(f"the rows given in memory ({what}) have no rows; give at least one")
        for number, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise DataError(f"the rows given in memory ({what}): row {number} is a {type(row).__name__}, "
                                "not a dict of columns")
        text = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str)
        name = f"{MEMORY_PREFIX}{what.split()[0].lower()}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
        _MEMORY[name] = rows
        names[key] = name
    return names


def _splits(data: Any) -> dict[str, tuple[str, list[dict]]]:
    """{"dataset": (what it was, rows), "eval_dataset": ...} as plain Python rows."""
    kind = type(data).__name__
    if kind == "DatasetDict":
        train = data.get("train")
        held = next((data[s] for s in EVAL_SPLITS if s in data), None)
        if train is None and held is None:
            raise DataError(f"the DatasetDict given in memory has the splits {', '.join(data)}; name the training "
                            f"one 'train' (and a held-out one {', '.join(EVAL_SPLITS)})")
        out = {"dataset": ("DatasetDict train split", train.to_list())} if train is not None else {}
        if held is not None:
            out["eval_dataset"] = ("DatasetDict held-out split", held.to_list())
        return out
    if kind == "Dataset":
        return {"dataset": ("Dataset", data.to_list())}
    if kind == "DataFrame":
        import datasets

        if len(data) == 0:
            raise DataError("the DataFrame given in memory has no rows; give at least one")
        # through datasets: numpy arrays, numpy scalars and missing values become plain Python
        return {"dataset": ("DataFrame", datasets.Dataset.from_pandas(data, preserve_index=False).to_list())}
    if isinstance(data, (list, tuple)):
        return {"dataset": ("list of rows", list(data))}
    raise DataError(f"data= takes a list of dicts, a pandas DataFrame, a datasets.Dataset or a DatasetDict; "
                    f"got a {kind}")


def in_memory(name: str) -> bool:
    return name.startswith(MEMORY_PREFIX) and name in _MEMORY


def write_memory_rows(names: list[str], folder: Path) -> dict[str, str]:
    """Write the rows in memory among ``names`` into ``folder`` as JSON lines: {name: file written}."""
    written = {}
    for name in names:
        if in_memory(name):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name.removeprefix(MEMORY_PREFIX)}.jsonl"
            path.write_text("".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in _MEMORY[name]),
                            encoding="utf-8")
            written[name] = str(path)
    return written
