"""The stage benchmark's quick mode (what `make bench-quick` runs): a table and JSON rows, and the plain
loop it compares against does the same math on the same batches (the same first loss)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT


def test_quick_bench_prints_the_table_and_writes_rows_with_matching_first_losses():
    (ROOT / "bench" / "results-quick.json").unlink(missing_ok=True)  # rows of earlier runs are kept by design
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "stages.py"), "--stages", "sft,dpo"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tunekit s/step" in proc.stdout and "ratio" in proc.stdout
    rows = {row["stage"]: row for row in json.loads((ROOT / "bench" / "results-quick.json").read_text())}
    assert set(rows) == {"sft", "sft+packing", "sft+checkpoint", "dpo"}
    for name in ("sft", "dpo"):
        row = rows[name]
        assert row["ratio"] > 0 and row["tunekit_peak_rss"] > 0 and row["plain_tokens_per_s"] > 0
        assert row["tunekit_first_loss"] == pytest.approx(row["plain_first_loss"], rel=1e-5)  # same math, same batch
