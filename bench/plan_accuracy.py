"""The plan's predictions against measurement: peak memory and seconds per step, predicted / measured.

    python bench/plan_accuracy.py                     # every stage, the tiny model and SmolLM2-135M (about 40 min)
    python bench/plan_accuracy.py --models tiny       # the tiny model only (about 20 min)
    python bench/plan_accuracy.py --stages sft,dpo    # some stages only
    python bench/plan_accuracy.py --fit [ROWS.json ...]  # CALIBRATION's CPU time factors fitted to rows, nothing run

Each run is a fresh ``tunekit train`` process (so that its peak RSS is its own): each stage a few steps, with
gradient checkpointing on and off and two batch sizes; on the tiny model every configuration runs three times, in
three passes over them all, and the fastest process is kept (``--runs``): this machine's speed drifts by a third from
one minute to the next, and a configuration's runs spread over the whole bench are less likely to all fall into a slow
spell than back-to-back ones. The plan (``tunekit/estimate.py``) is made before the
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

from tunekit.estimate import machine_rate
from tunekit.home import cache_home

HERE = Path(__file__).resolve().parent
MEMORY_BAND, TIME_BAND = (0.8, 1.25), (0.7, 1.4)
MODELS = {"tiny": "tiny-random-llama", "smollm2": "smollm2-135m-instruct"}
STEPS = {"tiny": 32, "smollm2": 6}  # the median of the steps after the first is measured
RUNS = {"tiny": 3, "smollm2": 1}  # processes per configuration, the fastest kept: a tiny run's steps take tens of
# milliseconds, and the same configuration measured 18 ms then 27 ms in consecutive processes
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


def keys_of(model: str, stage: str, batch: int, checkpointing: bool, out: Path, steps: int) -> dict:
    """The keys of one configuration's run."""
    keys = {"model_name_or_path": MODELS[model], "stage": stage, "output_dir": str(out), "overwrite_output_dir": True,
            "max_steps": steps, "logging_steps": 1, "save_steps": 1000, "per_device_train_batch_size": batch,
            "cutoff_len": 96 if stage in SAMPLING else 64, "max_samples": 64, "report_to": "none",
            "gradient_checkpointing": checkpointing, "plot_loss": False, **STAGES[stage]}
    if stage == "distill":  # a teacher as large as the student: its weights and forward pass are in the plan
        keys["teacher_model"] = MODELS[model]
    return keys


def run(model: str, stage: str, batch: int, checkpointing: bool, folder: Path, steps: int) -> dict:
    out = folder / f"{model}-{stage}-b{batch}-{'gc' if checkpointing else 'nogc'}"
    keys = keys_of(model, stage, batch, checkpointing, out, steps)
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


FITTED = ("efficiency_cpu", "step_overhead_cpu", "forward_overhead_cpu", "checkpoint_layer_overhead_cpu",
          "token_overhead_cpu", "token_layer_overhead_cpu", "sampling_bandwidth_cpu")  # the CPU time model's factors
DIVIDING = ("efficiency_cpu", "sampling_bandwidth_cpu")  # the prediction divides by these, and is linear in the rest


def planned(config: tuple) -> tuple:
    """One configuration's ``(cfg, stage, length, rows)`` as its run's plan reads them (no model weights)."""
    from tunekit.estimate import sample_length
    from tunekit.run import load_config
    from tunekit.stages import stage_of

    cfg = load_config(None, *(f"{k}={v}" for k, v in keys_of(*config, Path("unused"), STEPS[config[0]]).items()))
    stage = stage_of(cfg)
    return cfg, stage, *sample_length(cfg, stage)


def predicted_seconds(plan: tuple, rates: dict, factors: dict) -> float:
    """The s/step the plan predicts for ``plan`` (from ``planned``) with CALIBRATION's ``factors`` changed, at the
    probed ``rates`` (``matmul``, ``bandwidth``) rather than this machine's."""
    from unittest import mock

    from tunekit import estimate as tk_estimate

    cfg, stage, length, rows = plan
    with mock.patch.dict(tk_estimate.CALIBRATION, factors), \
            mock.patch.object(tk_estimate, "machine_rate", lambda what="matmul": rates[what]):
        return tk_estimate.estimate(cfg, stage, length=length, rows=rows, free=2**50, rate=rates["matmul"],
                                    gpus=False, fixes=False).seconds_per_step


def fit(rows: list[dict]) -> dict:
    """The values of ``FITTED`` that best predict the measured seconds per step of ``rows`` (least squares on
    predicted / measured - 1, none negative), at the probed rates each row was measured with. The prediction is
    linear in each fixed cost and in the inverse of each ``DIVIDING`` share, so each row's prediction is made once
    with them all at zero and once with each at one: the differences are the columns of a linear fit."""
    import numpy as np

    measured_rows = [r for r in rows if "error" not in r and r.get("measured_seconds_per_step") and "matmul_rate" in r]
    reference = float(np.median([r["matmul_rate"] for r in measured_rows]))  # the fixed costs are this rate's seconds
    zero = {k: (float("inf") if k in DIVIDING else 0.0) for k in FITTED} | {"matmul_rate_cpu": reference}
    columns, target = [], []
    for r in measured_rows:
        plan = planned((r["model"], r["stage"], r["batch"], r["checkpointing"]))
        rates = {"matmul": r["matmul_rate"], "bandwidth": r["bandwidth"]}
        measured, base = r["measured_seconds_per_step"], predicted_seconds(plan, rates, zero)
        columns.append([(predicted_seconds(plan, rates, zero | {k: 1.0}) - base) / measured for k in FITTED])
        target.append(1 - base / measured)
    a, b = np.array(columns), np.array(target)
    free = list(range(len(FITTED)))
    while True:  # least squares; a factor that comes out negative is set to zero and the rest fitted again
        solution = np.zeros(len(FITTED))
        solution[free] = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
        if (solution >= 0).all():
            break
        free = [i for i in free if solution[i] > 0]
    ratios = 1 + a @ solution - b  # predicted / measured with the fitted values
    values = {k: (1 / v if k in DIVIDING and v > 0 else v) for k, v in zip(FITTED, solution)}
    outside = [(r["model"], r["stage"], r["batch"], r["checkpointing"], round(float(ratio), 2))
               for r, ratio in zip(measured_rows, ratios) if not TIME_BAND[0] <= ratio <= TIME_BAND[1]]
    return values | {"matmul_rate_cpu": reference, "rows": len(b), "outside": outside}


def in_band(values: dict, rows: list[dict]) -> int:
    """How many of ``rows`` the factors ``values`` (from ``fit``) predict within the time band."""
    factors = {k: values[k] for k in (*FITTED, "matmul_rate_cpu")}
    predicted = lambda r: predicted_seconds(planned((r["model"], r["stage"], r["batch"], r["checkpointing"])),  # noqa: E731
                                            {"matmul": r["matmul_rate"], "bandwidth": r["bandwidth"]}, factors)
    return sum(TIME_BAND[0] <= predicted(r) / r["measured_seconds_per_step"] <= TIME_BAND[1] for r in rows
               if "error" not in r and r.get("measured_seconds_per_step"))


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
                        help="steps per run (default: 32 on the tiny model, whose steps take milliseconds and vary "
                             "by a third from one to the next; 6 on SmolLM2)")
    parser.add_argument("--runs", type=int, default=None,
                        help="processes per configuration, one per pass over them all, the fastest kept "
                             "(default: 3 on the tiny model, 1 on SmolLM2)")
    parser.add_argument("--fit", nargs="*", metavar="ROWS.json",
                        help="fit the CPU time model's factors (CALIBRATION in tunekit/estimate.py) to the rows of "
                             "these files together (default: bench/results-plan.json), print them, and run nothing")
    parser.add_argument("--markdown", action="store_true",
                        help="print bench/results-plan.json as docs/plan.md's table, and run nothing")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads((HERE / "results-plan.json").read_text())))
        return 0
    if args.fit is not None:
        runs = [json.loads(Path(path).read_text()) for path in args.fit or [HERE / "results-plan.json"]]
        values = fit([row for run_rows in runs for row in run_rows])
        rows, outside = values.pop("rows"), values.pop("outside")
        print(f"fitted to {rows} rows, {rows - len(outside)} of them within 0.7-1.4 with these:")
        print("\n".join(f"    {k!r}: {v:.3g}," for k, v in values.items()))
        print("".join(f"outside the band: {' '.join(map(str, row))}\n" for row in outside), end="")
        for i, path in enumerate(args.fit if len(runs) > 1 else []):  # each run predicted by a fit to the others
            others = fit([row for j, run_rows in enumerate(runs) if j != i for row in run_rows])
            print(f"fitted to the other files, {path}'s rows within 0.7-1.4: {in_band(others, runs[i])} of "
                  f"{len(runs[i])}")
        return 0
    # The probes of this machine (its matrix-multiply rate and memory bandwidth) are made again
    # now, as the first run's plan makes them: a cache from another day would describe another state of the machine.
    (cache_home() / "machine_rate.json").unlink(missing_ok=True)
    print(f"this machine: {machine_rate() / 1e9:.0f} GFLOP/s matrix multiply, {machine_rate('bandwidth') / 1e9:.0f} GB/s "
          f"memory (probed now, cached for every run's plan)")
    configs = [(model, stage, batch, checkpointing) for model in args.models.split(",")
               for stage in args.stages.split(",") for batch in (int(b) for b in args.batches.split(","))
               for checkpointing in ((False,) if stage == "ppo" else (False, True))]  # ppo: its own loop
    tries: dict[tuple, list[dict]] = {}  # every process's row, per configuration
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "plan_rewards.py").write_text(REWARDS)
        for done in range(max(args.runs or RUNS[c[0]] for c in configs)):  # passes over every configuration
            now = [c for c in configs if done < (args.runs or RUNS[c[0]])]
            for config in now:
                tries.setdefault(config, []).append(run(*config, folder, args.steps or STEPS[config[0]]))
            print(f"pass {done + 1}: {len(now)} configurations run", flush=True)
    probed = {"matmul_rate": machine_rate(), "bandwidth": machine_rate("bandwidth")}  # what every plan was made with
    speed = lambda r: r.get("measured_seconds_per_step") or float("inf")  # noqa: E731
    rows = [min(tries[c], key=speed) | probed | {"measured_seconds_per_step_runs": [
        r.get("measured_seconds_per_step") for r in tries[c]]} for c in configs]  # the fastest process kept
    print(f"{'model':<8} {'stage':<7} {'batch':>5} {'ckpt':>4} {'peak pred':>10} {'measured':>9} {'ratio':>6} "
          f"{'s/step pred':>11} {'measured':>9} {'ratio':>6}")
    for row in rows:
        model, stage, batch, checkpointing = (row[k] for k in ("model", "stage", "batch", "checkpointing"))
        if "error" in row:
            print(f"{model:<8} {stage:<7} {batch:>5} {'on' if checkpointing else 'off':>4} error: {row['error']}")
            continue
        measured = row["measured_seconds_per_step"]
        print(f"{model:<8} {stage:<7} {batch:>5} {'on' if checkpointing else 'off':>4} "
              f"{row['plan_peak_memory_bytes'] / 2**30:>8.2f}Gi {row['measured_peak_memory_bytes'] / 2**30:>7.2f}Gi "
              f"{within(row['memory_ratio'], MEMORY_BAND):>6} {row['plan_seconds_per_step']:>11.4f} "
              f"{measured if measured is not None else float('nan'):>9.4f} {within(row['time_ratio'], TIME_BAND):>6}")
    good = [r for r in rows if "error" not in r]
    memory_ok = sum(MEMORY_BAND[0] <= r["memory_ratio"] <= MEMORY_BAND[1] for r in good)
    time_ok = sum(r["time_ratio"] is not None and TIME_BAND[0] <= r["time_ratio"] <= TIME_BAND[1] for r in good)
    print(f"\nwithin the bands: memory {memory_ok} of {len(good)} runs (0.8-1.25), time {time_ok} of {len(good)} "
          f"(0.7-1.4); {len(rows) - len(good)} runs failed")
    out = HERE / "results-plan.json"  # the rows of configurations not run this time are kept
    key = lambda r: (r["model"], r["stage"], r["batch"], r["checkpointing"])  # noqa: E731
    kept = [r for r in json.loads(out.read_text()) if key(r) not in tries] if out.exists() else []
    rows = sorted(kept + rows, key=lambda r: (list(MODELS).index(r["model"]), list(STAGES).index(r["stage"]),
                                              r["batch"], r["checkpointing"]))  # one order, whichever ran
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if memory_ok == time_ok == len(good) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
