"""Rows of the tunekit_mc task, read from the JSONL next to this file (whatever the current directory).

lm-eval resolves a task's `data_files` against the current directory, not the YAML's folder; a
`custom_dataset` function is resolved next to the YAML, so the bundled task runs from anywhere.
"""

import json
from pathlib import Path


def load(**_metadata):
    import datasets

    path = Path(__file__).with_name("tunekit_mc.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
