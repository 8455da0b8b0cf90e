"""The plan's predictions against measurement: peak memory and seconds per step, predicted / measured.

    python bench/plan_accuracy.py                     # every stage, the tiny model and SmolLM2-135M (about 45 min)
    python bench/plan_accuracy.py --models tiny       # the tiny model only (minutes)
    python bench/plan_accuracy.py --stages sft,dpo    # some stages only

Each run is a fresh ``tunekit train`` process (so that its peak RSS is its own): each stage a few steps, with
gradient checkpointing on and off and two batch sizes; on the tiny model each configuration runs twice and the
faster process is kept (``--runs``). The plan (``tunekit/estimate.py``) is made before the
first step and measured after the last one (``all_results.json``: ``plan_*`` and ``measured_*``: peak RSS on a
CPU, ``max_memory_allocated`` on CUDA; the median seconds per step, the first step left out). The table prints
the two ratios per run and whether each is within the targets (memory 0.8-1.25, time 0.7-1.4); rows go to
``bench/results-plan.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tunekit.home import cache_home

HERE = Path(__file__).resolve().parent
MEMORY_BAND, TIME_BAND = (0.8, 1.25), (0.7, 1.4)
MODELS = {"tiny": "tiny-random-llama", "smollm2": "smollm2-135m-instruct"}
STEPS = {"tiny": 16, "smollm2": 6}  # the median of the steps after the first is measured
RUNS = {"tiny": 2, "smollm2": 1}  # processes per configuration, the fastest kept: a tiny run's steps take tens of
# milliseconds, and 2 of 26 tiny processes once ran every step about twice as slow as the others (thread placement)
STAGES = {  # stage: keys (rows longer than cutoff_len, so that every batch has the length the plan assumes)
    "pt": {"dataset": "c4_demo"},
    "sft": {"dataset": "alpaca_en_demo"},
    "rm": {"dataset": "dpo_en_demo"},
    "dpo": {"dataset": "dpo_en_demo"},
    "kto": {"dataset": "kto_en_demo"},
    "grpo": {"dataset": "math_demo", "num_generations": 2, "max_new_tokens": 16, "reward_funcs": "format"},
    "ppo": {"dataset": "alpaca_en_demo", "reward_model_type": "function", "reward_model": "plan_rewards:length",
            "max_new_tokens": 16},
    "rloo": {"dataset": "math_demo", "num_generations": 2, "max_new_tokens": 16, "reward_funcs": "format"},
    "distill": {"dataset": "math_demo", "max_new_tokens": 16},  # the teacher: the same model (see run)
}
SAMPLING = ("grpo", "ppo", "rloo", "distill")  # their rows hold a prompt and room for the answer
REWARDS = "def length(prompts, responses):\n    return [min(len(r), 100) / 100 for r in responses]\n"


def run(model: str, stage: str, batch: int, checkpointing: bool, folder: Path, steps: int) -> dict:
    out = folder / f"{model}-{stage}-b{batch}-{'gc' if checkpointing else 'nogc'}"
    keys = {"model_name_or_path": MODELS[model], "stage": stage, "output_dir": str(out), "overwrite_output_dir": True,
            "max_steps": steps, "logging_steps": 1, "save_steps": 1000, "per_device_train_batch_size": batch,
            "cutoff_len": 96 if stage in SAMPLING else 64, "max_samples": 64, "report_to": "none",
            "gradient_checkpointing": checkpointing, "plot_loss": False, **STAGES[stage]}
    if stage == "distill":  # a teacher as large as the student: its weights and forward pass are in the plan
        keys["teacher_model"] = MODELS[model]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(folder)])}
    done = subprocess.run([sys.executable, "-m", "tunekit", "train", *(f"{k}={v}" for k, v in keys.items())],
                          capture_output=True, text=True, env=env, cwd=folder)
    row = {"model": model, "stage": stage, "batch": batch, "checkpointing": checkpointing}
    if done.returncode != 0:
        return row | {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    results = json.loads((out / "all_results.json").read_text())
    row |= {k: results.get(k) for k in ("plan_peak_memory_bytes", "measured_peak_memory_bytes",
                                        "plan_seconds_per_step", "measured_seconds_per_step")}
    row["memory_ratio"] = row["plan_peak_memory_bytes"] / row["measured_peak_memory_bytes"]
    measured = row["measured_seconds_per_step"]
    row["time_ratio"] = row["plan_seconds_per_step"] / measured if measured else None
    return row


def within(value, band, out: str = " !") -> str:
    """The ratio, marked with ``out`` where it falls outside ``band``."""
    return "-" if value is None else f"{value:.2f}{'' if band[0] <= value <= band[1] else out}"


def markdown(rows: list[dict]) -> str:
    """``rows`` as the table docs/plan.md carries (``--markdown``: from bench/results-plan.json, nothing run)."""
    gib = 2 ** 30
    out = ["| model | stage | batch | checkpointing | peak predicted / measured | ratio | s/step predicted / measured | "
           "ratio |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | {r['stage']} | {r['batch']} | {'on' if r['checkpointing'] else 'off'} | "
                       f"failed: {r['error']} | | | |")
            continue
        out.append(f"| {r['model']} | {r['stage']} | {r['batch']} | {'on' if r['checkpointing'] else 'off'} | "
                   f"{r['plan_peak_memory_bytes'] / gib:.2f} / {r['measured_peak_memory_bytes'] / gib:.2f} GiB | "
                   f"{within(r['memory_ratio'], MEMORY_BAND, ' (out)')} | {r['plan_seconds_per_step']:.3g} / "
                   f"{r['measured_seconds_per_step']:.3g} | {within(r['time_ratio'], TIME_BAND, ' (out)')} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,smollm2")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--batches", default="2,4")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per run (default: 16 on the tiny model, whose steps take milliseconds and vary "
                             "by a third from one to the next; 6 on SmolLM2)")
    parser.add_argument("--runs", type=int, default=None,
                        help="processes per configuration, the fastest kept (default: 2 on the tiny model, 1 on SmolLM2)")
    parser.add_argument("--markdown", action="store_true",
                        help="print bench/results-plan.json as docs/plan.md's table, and run nothing")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads((HERE / "results-plan.json").read_text())))
        return 0
    # The probes of this machine (its matrix-multiply rate and memory bandwidth) are made again
    # now, as the first run's plan makes them: a cache from another day would describe another state of the machine.
    (cache_home() / "machine_rate.json").unlink(missing_ok=True)
    rows = []
    print(f"{'model':<8} {'stage':<5} {'batch':>5} {'ckpt':>4} {'peak pred':>10} {'measured':>9} {'ratio':>6} "
          f"{'s/step pred':>11} {'measured':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "plan_rewards.py").write_text(REWARDS)
        for model in args.models.split(","):
            for stage in args.stages.split(","):
                for batch in (int(b) for b in args.batches.split(",")):
                    for checkpointing in ((False,) if stage == "ppo" else (False, True)):  # ppo: its own loop
                        tries = [run(model, stage, batch, checkpointing, folder, args.steps or STEPS[model])
                                 for _ in range(args.runs or RUNS[model])]
                        row = min(tries, key=lambda r: r.get("measured_seconds_per_step") or float("inf"))
                        rows.append(row)
                        if "error" in row:
                            print(f"{model:<8} {stage:<5} {batch:>5} {'on' if checkpointing else 'off':>4} "
                                  f"error: {row['error']}", flush=True)
                            continue
                        measured = row["measured_seconds_per_step"]
                        print(f"{model:<8} {stage:<5} {batch:>5} {'on' if checkpointing else 'off':>4} "
                              f"{row['plan_peak_memory_bytes'] / 2**30:>8.2f}Gi "
                              f"{row['measured_peak_memory_bytes'] / 2**30:>7.2f}Gi "
                              f"{within(row['memory_ratio'], MEMORY_BAND):>6} {row['plan_seconds_per_step']:>11.3f} "
                              f"{measured if measured is not None else float('nan'):>9.3f} "
                              f"{within(row['time_ratio'], TIME_BAND):>6}", flush=True)
    good = [r for r in rows if "error" not in r]
    memory_ok = sum(MEMORY_BAND[0] <= r["memory_ratio"] <= MEMORY_BAND[1] for r in good)
    time_ok = sum(r["time_ratio"] is not None and TIME_BAND[0] <= r["time_ratio"] <= TIME_BAND[1] for r in good)
    print(f"\nwithin the bands: memory {memory_ok} of {len(good)} runs (0.8-1.25), time {time_ok} of {len(good)} "
          f"(0.7-1.4); {len(rows) - len(good)} runs failed")
    out = HERE / "results-plan.json"  # the rows of models not measured this time are kept
    kept = [r for r in json.loads(out.read_text()) if r["model"] not in args.models.split(",")] if out.exists() else []
    rows = sorted(kept + rows, key=lambda r: list(MODELS).index(r["model"]))  # the order of MODELS, whichever ran
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if memory_ok == time_ok == len(good) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
