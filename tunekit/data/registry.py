"""The data-set registry: LLaMA-Factory's ``dataset_info.json``, for the bundled sets and a user's folder.

An entry names a file (json, jsonl, csv, parquet, arrow, txt: one text per line, or a folder of them; the
types LLaMA-Factory reads) under ``dataset_dir`` (or a
hub data set via ``hf_hub_url``), its ``formatting`` (alpaca | sharegpt | openai), whether it is a
preference set (``ranking``), and how its ``columns`` and ``tags`` map onto the canonical ones.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, error_reason

BUNDLED_DIR = Path(__file__).parent / "demo"
FORMATS = ("alpaca", "sharegpt", "openai")
FILE_TYPES = (".json", ".jsonl", ".csv", ".parquet", ".arrow", ".txt")


@dataclass
class DatasetEntry:
    name: str
    folder: Path
    file_name: str | None = None
    hf_hub_url: str | None = None
    subset: str | None = None
    split: str = "train"
    formatting: str = "alpaca"
    ranking: bool = False
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    source: str = "registered"  # in words, for the log: "bundled", "a file", "a hub id", "rows in memory", ...
    rows: list | None = None  # rows in memory (``sources.remember``), read instead of a file
    detect: bool = False  # not registered: the format is found from the columns (``detect.py``)
    shape: str | None = None  # formatting "trl": text, prompt, prompt-completion, preference, implicit, unpaired


def read_registry(dataset_dir: str | Path | None) -> dict[str, DatasetEntry]:
    """Bundled entries, overlaid by ``dataset_dir/dataset_info.json`` when that exists."""
    entries = _read_info(BUNDLED_DIR / "dataset_info.json")
    if dataset_dir is not None and (Path(dataset_dir) / "dataset_info.json").is_file():
        entries.update(_read_info(Path(dataset_dir) / "dataset_info.json"))
    return entries


def _read_info(path: Path) -> dict[str, DatasetEntry]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from None
    if not isinstance(info, dict):
        raise DataError(f"{path} must map data-set names to entries, e.g. {{\"my_set\": {{\"file_name\": \"my.json\"}}}}")
    entries = {}
    for name, raw in info.items():  # entries are checked when used: LLaMA-Factory's file lists many hub-only sets
        if not isinstance(raw, dict):
            raise DataError(f"{path}: entry {name!r} must be an object such as {{\"file_name\": \"my.json\"}}")
        for key in ("columns", "tags"):
            if not isinstance(raw.get(key) or {}, dict):
                raise DataError(f"{path}: entry {name!r} has {key}={raw[key]!r}; it must be an object such as "
                                f"{{\"prompt\": \"instruction\"}}")
        formatting = raw.get("formatting", "alpaca")
        entries[name] = DatasetEntry(
            name=name, folder=path.parent, file_name=raw.get("file_name"), hf_hub_url=raw.get("hf_hub_url"),
            subset=raw.get("subset"), split=raw.get("split", "train"), formatting=formatting,
            ranking=bool(raw.get("ranking", False)), columns=dict(raw.get("columns") or {}),
            tags=dict(raw.get("tags") or {}),
        )
    return entries


def data_files(entry: DatasetEntry) -> list[Path]:
    """The files an entry reads (a file, or the data files of a folder): a ``DataError`` when there are none."""
    path = entry.folder / (entry.file_name or "")
    if not path.exists():
        raise DataError(f"dataset {entry.name!r}: file {path} does not exist (file_name in dataset_info.json)")
    files = (sorted(p for p in path.iterdir() if p.suffix.lower() in FILE_TYPES and p.name != "dataset_info.json")
             if path.is_dir() else [path])
    if not files:
        raise DataError(f"dataset {entry.name!r}: folder {path} holds no {', '.join(FILE_TYPES)} files")
    return files


def read_rows(entry: DatasetEntry) -> list[dict]:
    """All rows of an entry as plain dicts."""
    if entry.rows is not None:
        return entry.rows
    if entry.file_name is None:
        return _read_hub(entry)
    path = entry.folder / entry.file_name
    if saved_by_datasets(path):
        return _read_saved(entry, path)
    files = data_files(entry)
    rows: list[dict] = []
    for file in files:
        try:
            rows.extend(_read_file(entry.name, file))
        except UnicodeDecodeError as err:
            raise DataError(f"dataset {entry.name!r}: {file} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    return rows


def _read_file(name: str, path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _json_lines(name, path, path.read_text(encoding="utf-8"))
    if suffix == ".json":
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if text.lstrip().startswith("{") and "\n{" in text:  # JSON lines in a .json file
                return _json_lines(name, path, text)
            raise DataError(f"dataset {name!r}: {path} is not valid JSON (line {err.lineno}): {err.msg}") from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise DataError(f"dataset {name!r}: {path} holds a JSON {type(data).__name__}; it must hold a list of rows")
        return _check_dicts(name, path, data)
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if suffix == ".parquet":
        import pyarrow
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except pyarrow.ArrowException as err:
            raise DataError(f"dataset {name!r}: {path} is not a readable parquet file: {error_reason(err, path)}") from None
    if suffix == ".txt":  # as the datasets "text" loader reads it: one row per line, in a "text" column
        return [{"text": line} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".arrow":  # an Arrow stream, as datasets writes its cache and save_to_disk files
        import datasets
        import pyarrow

        try:
            return datasets.Dataset.from_file(str(path)).to_list()
        except (pyarrow.ArrowException, OSError, ValueError) as err:
            raise DataError(f"dataset {name!r}: {path} is not a readable Arrow file: {error_reason(err, path)}") from None
    raise DataError(f"dataset {name!r}: {path} is not a {', '.join(FILE_TYPES)} file")


def saved_by_datasets(path: Path) -> bool:
    """A folder ``datasets``' ``save_to_disk`` wrote (a ``Dataset`` or a ``DatasetDict``)."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def _read_saved(entry: DatasetEntry, path: Path) -> list[dict]:
    """The rows of a ``save_to_disk`` folder: a ``DatasetDict``'s ``entry.split`` split."""
    import datasets

    saved = datasets.load_from_disk(str(path))
    if isinstance(saved, datasets.DatasetDict):
        if entry.split not in saved:
            raise DataError(f"dataset {entry.name!r}: {path} has the splits {', '.join(saved)} and no {entry.split!r}; "
                            f"name one as {entry.name}:SPLIT or with dataset_split")
        saved = saved[entry.split]
    return saved.to_list()


def _json_lines(name: str, path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"dataset {name!r}: {path} line {number} is not valid JSON: {err.msg}") from None
    return _check_dicts(name, path, rows)


def _check_dicts(name: str, path: Path, rows: list) -> list[dict]:
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"dataset {name!r}: {path} row {number} is a {type(row).__name__}, not an object")
    return rows


def _read_hub(entry: DatasetEntry) -> list[dict]:
    from ..hub import hub_reachable

    if not hub_reachable():
        raise DataError(
            f"dataset {entry.name!r} lives on the hub ({entry.hf_hub_url}), which is unreachable; "
            "use a local file (file_name) or a bundled set"
        )
    import datasets

    try:
        return datasets.load_dataset(entry.hf_hub_url, entry.subset, split=entry.split).to_list()
    except (FileNotFoundError, ValueError) as err:  # no such set, or no such split
        raise DataError(f"dataset {entry.name!r}: the hub data set {entry.hf_hub_url!r} (split {entry.split!r}) "
                        f"cannot be loaded: {error_reason(err)}") from None
