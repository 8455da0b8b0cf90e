"""The night before a workshop: run every notebook in full mode, headless, and say what each one taught.

    make workshop-check                      # or: .venv/bin/python tools/workshop_check.py
    python tools/workshop_check.py --budget 900 notebooks/02_sft.ipynb notebooks/05_dpo.ipynb

The notebooks run one after another, in order, in one folder (``workshop-check/``, emptied first), as a
room would run them: 04_ppo finds 03's reward model, 05_dpo 02's adapter. Full mode: the default model
and the notebooks' own step counts (``TUNEKIT_SMOKE`` is removed from the kernel's environment).

For each notebook it prints a row: wall time, the measured before -> after of its held-out evaluation
(``saves/<notebook>/eval/eval_results.json``), pass or fail, and the slowest cells. It writes the table as
``workshop-check/results.json`` and each executed notebook (with its outputs) beside it, and exits 1
if a notebook fails or takes longer than its budget (``--budget`` seconds, 600 by default: 10 minutes
on 2 cores). ``--keep`` reruns the notebooks named after a fix, in the folder as it is (03's reward model
and 02's adapter stay for 04 and 05), and keeps the other notebooks' rows. ``--seed N`` sets each notebook's
``SEED`` parameter (a cell ``SEED = N`` after its parameters cell, as papermill injects one), so a second
seed shows whether a before -> after holds; the row records the seed. ``--set NAME=VALUE`` sets any other
parameter the same way (``--set KL_OFF_STEPS=24`` runs 04_ppo's optional section); the row records it.

A notebook of ``notebooks/`` that passes with its own parameters (no ``--set``, ``--seed`` absent or the notebook's own) is also
published to ``docs/notebooks/``: the executed copy, opened by a note of when, on what machine and in how long it
ran, which the documentation site shows as it is (``make docs`` never runs a notebook). ``--no-docs`` skips that.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "notebooks"  # the executed copies the documentation site shows


def cell_seconds(cell, stopped_at: datetime | None = None) -> float | None:
    """How long a cell ran, from the timestamps nbclient records in its metadata; a cell stopped by the
    budget (started, never finished) counts until ``stopped_at``."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not (end or stopped_at):
        return None
    parse = lambda stamp: datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # noqa: E731
    return ((parse(end) if end else stopped_at) - parse(start)).total_seconds()


def slowest_cells(notebook, n: int = 2, stopped_at: datetime | None = None) -> list[dict]:
    """The ``n`` slowest code cells: their index, seconds and first line."""
    timed = [{"cell": i, "seconds": round(s, 1), "first_line": c.source.strip().splitlines()[0][:60] if c.source.strip() else ""}
             for i, c in enumerate(notebook.cells)
             if c.cell_type == "code" and (s := cell_seconds(c, stopped_at)) is not None]
    return sorted(timed, key=lambda t: -t["seconds"])[:n]


def before_after(folder: Path, stem: str) -> dict | None:
    """The held-out evaluation a notebook wrote: each measure's base and tuned value, and the win rate."""
    path = folder / "saves" / stem / "eval" / "eval_results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    measures = {name: {"base": sides.get("base"), "tuned": sides.get("tuned")}
                for name, sides in results.get("measures", {}).items()}
    win = results.get("win_rate")
    return {"rows": results.get("rows"), "measures": measures,
            "win_rate": win.get("win_rate") if isinstance(win, dict) else win,
            "win_rate_without_ties": win.get("without_ties") if isinstance(win, dict) else None,
            "intervals": results.get("intervals") or {}}


def said(measured: dict | None) -> str:
    if not measured:
        return "-"
    parts = []
    for name, s in measured["measures"].items():
        span = measured.get("intervals", {}).get(name)
        span = f" (change {span['change']:+.3g}, 95% [{span['low']:+.3g}, {span['high']:+.3g}])" if span else ""
        parts.append(f"{name} {_num(s['base'])} -> {_num(s['tuned'])}{span}")
    if measured.get("win_rate") is not None:
        apart = measured.get("win_rate_without_ties")
        parts.append(f"win rate {measured['win_rate']:.2f}" + ("" if apart is None else f" ({apart:.2f} ties apart)"))
    return "; ".join(parts) + f" ({measured['rows']} rows)"


def with_parameters(notebook, values: dict):
    """The notebook with ``NAME = value`` for each of ``values`` in a cell of its own right after its parameters
    cell (tagged ``parameters``, or the first code cell that starts with ``# Parameters``), as papermill injects one."""
    import nbformat

    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    tagged = [i for i in code if "parameters" in notebook.cells[i].get("metadata", {}).get("tags", [])]
    marked = [i for i in code if notebook.cells[i].source.lstrip().startswith("# Parameters")]
    after = (tagged or marked or [-1])[0]
    lines = [f"{name} = {value!r}" for name, value in values.items()]
    cell = nbformat.v4.new_code_cell("# injected by workshop_check (--seed, --set)\n" + "\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(after + 1, cell)
    return notebook


def parameter(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` from ``--set``: the value as a Python literal (24, 0.5, True, "x"), else as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"--set {text!r}: write NAME=VALUE, e.g. --set KL_OFF_STEPS=24")
    try:
        return name.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return name.strip(), value.strip()


def _num(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def run_notebook(path: Path, folder: Path, budget: float, seed: int | None = None, values: dict | None = None) -> dict:
    """Execute one notebook in ``folder``; the executed copy is saved there. Never raises for a failing notebook."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = nbformat.read(path, as_version=4)
    injected = ({"SEED": seed} if seed is not None else {}) | (values or {})
    if injected:
        notebook = with_parameters(notebook, injected)
    client = NotebookClient(notebook, timeout=int(budget), kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(folder)}})
    error, start = None, time.perf_counter()
    try:
        client.execute(env=_full_mode_env())
    except CellTimeoutError:
        error = f"a cell ran past the budget of {budget:.0f} s and was stopped"
    except CellExecutionError as err:
        error = _last_line(str(err))
    except Exception as err:  # the kernel died, or could not start
        error = f"{type(err).__name__}: {_last_line(str(err))}"
    seconds, stopped_at = time.perf_counter() - start, datetime.now(timezone.utc)
    nbformat.write(notebook, folder / path.name)
    over = seconds > budget
    return {"notebook": path.stem, "seed": seed, "parameters": values or {}, "seconds": round(seconds, 1), "budget": budget,
            "passed": error is None and not over,
            "failure": error or (f"took {seconds:.0f} s, over the budget of {budget:.0f} s" if over else None),
            "before_after": before_after(folder, path.stem),
            "slowest_cells": slowest_cells(notebook, stopped_at=stopped_at if error else None)}


def machine() -> str:
    """This machine in a few words: its cores and CPU (the site says where its notebook outputs were made)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), re.M)
        model = found.group(1).strip() if found else model
    return f"{os.cpu_count()} cores of {model}, {platform.system()}"


def own_seed(notebook) -> int | None:
    """The ``SEED`` a notebook sets in its parameters cell (None if it sets none)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            found = re.search(r"^SEED\s*=\s*(\d+)", cell.source, re.M)
            return int(found.group(1)) if found else None
    return None


def publish(executed: Path, row: dict, folder: Path = DOCS) -> Path:
    """Copy an executed notebook to the docs, opened by a note of when, where and in how long it ran, without the live
    widgets' state (the panels' static copies stay: they are what a page without a kernel shows)."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata.pop("widgets", None)  # the live widgets' state (megabytes of chart data): not for a static page
    for cell in notebook.cells:  # each panel's output keeps its static copy (HTML, PNG), which every renderer shows
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
    note = (f"*This page shows the notebook as `make workshop-check` ran it on "
            f"{datetime.now(timezone.utc):%Y-%m-%d}, on {machine()}: {row['seconds'] / 60:.1f} min with its own "
            f"parameters (seed {row['seed'] if row['seed'] is not None else own_seed(notebook)}); held-out before -> "
            f"after: {said(row['before_after'])}. Run it yourself with `make lab`.*")
    cell = nbformat.v4.new_markdown_cell(note)
    cell.metadata["tags"] = ["workshop-check-note"]
    notebook.cells.insert(0, cell)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / executed.name)
    return folder / executed.name


def _full_mode_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TUNEKIT_SMOKE"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else text[:200]


def table(rows: list[dict]) -> str:
    """The rows as a markdown table (docs/workshop.md carries one)."""
    out = ["| notebook | seed | wall time | held-out before -> after | result | slowest cells |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        slow = ", ".join(f"[{c['cell']}] {c['seconds']:.0f} s" for c in r["slowest_cells"])
        result = "pass" if r["passed"] else f"FAIL: {r['failure']}"
        seed = "default" if r.get("seed") is None else r["seed"]
        name = r["notebook"] + "".join(f" {k}={v}" for k, v in (r.get("parameters") or {}).items())
        out.append(f"| {name} | {seed} | {r['seconds'] / 60:.1f} min | {said(r['before_after'])} | {result} "
                   f"| {slow} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb, in order")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds each notebook may take (default 600)")
    parser.add_argument("--folder", type=Path, default=ROOT / "workshop-check",
                        help="where they run and what they write (emptied first; default workshop-check/)")
    parser.add_argument("--keep", action="store_true",
                        help="do not empty the folder: rerun a notebook after a fix, on the earlier ones' outputs")
    parser.add_argument("--seed", type=int, default=None,
                        help="set each notebook's SEED parameter (default: the notebooks' own)")
    parser.add_argument("--no-docs", action="store_true",
                        help="do not publish passing notebooks to docs/notebooks/ (the site's rendered notebooks)")
    parser.add_argument("--set", type=parameter, action="append", default=[], metavar="NAME=VALUE", dest="values",
                        help="set another parameter of each notebook, e.g. --set KL_OFF_STEPS=24 (repeatable)")
    args = parser.parse_args(argv)
    import nbformat

    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    results = args.folder / "results.json"
    if args.folder.exists() and not args.keep:
        shutil.rmtree(args.folder)
    args.folder.mkdir(parents=True, exist_ok=True)
    rerun = {path.stem for path in paths}
    earlier = json.loads(results.read_text()) if args.keep and results.is_file() else []
    rows = [r for r in earlier if r["notebook"] not in rerun]  # the rows of notebooks not run again are kept
    for path in paths:
        print(f"[workshop-check] {path.stem}: running (budget {args.budget:.0f} s) ...", flush=True)
        rows.append(run_notebook(path.resolve(), args.folder, args.budget, args.seed, dict(args.values)))
        r = rows[-1]
        ours = path.resolve().parent == ROOT / "notebooks"  # the repository's notebooks, as they are
        own = ours and not args.values and args.seed in (None, own_seed(nbformat.read(path, as_version=4)))
        if r["passed"] and own and not args.no_docs:
            print(f"[workshop-check] {path.stem}: published to {publish(args.folder / path.name, r).relative_to(ROOT)}")
        print(f"[workshop-check] {path.stem}: {'pass' if r['passed'] else 'FAIL (' + r['failure'] + ')'}, "
              f"{r['seconds']:.0f} s; {said(r['before_after'])}", flush=True)
        rows.sort(key=lambda row: row["notebook"])
        results.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print()
    print(table(rows))
    failed = [r["notebook"] for r in rows if not r["passed"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} notebooks passed; results: {results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
