"""How much slower training is with a TrainPanel attached than without (the target: a few percent).

    .venv/bin/python bench/panel_overhead.py                      # tiny model: the worst case, ~20 ms steps
    .venv/bin/python bench/panel_overhead.py --model smollm2-135m-instruct --steps 20

Runs the same SFT config alternately with plain ``tk.train`` and with ``TrainPanel(...).run()``,
``--repeats`` times each after one short warm-up run, and prints the median ``train_runtime`` of each and their ratio.
"""

import argparse
import statistics
import tempfile

import tunekit as tk
from tunekit.widgets import TrainPanel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random-llama")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--refresh", type=float, default=1.0, help="the panel's redraw interval, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = {"model_name_or_path": args.model, "stage": "sft", "dataset": "identity", "cutoff_len": 128,
                  "per_device_train_batch_size": 4, "max_steps": args.steps, "logging_steps": 1, "save_steps": 10**6,
                  "learning_rate": 1e-4, "output_dir": folder, "overwrite_output_dir": True, "report_to": "none"}
        tk.train(config, progress=False, max_steps=min(5, args.steps))  # warm-up: first-run costs count for neither
        plain, panel = [], []
        for _ in range(args.repeats):
            plain.append(tk.train(config, progress=False).metrics["train_runtime"])
            panel.append(TrainPanel(config, refresh=args.refresh).run(show=False).metrics["train_runtime"])
    a, b = statistics.median(plain), statistics.median(panel)
    print(f"model={args.model} steps={args.steps} logging_steps=1 refresh={args.refresh}s")
    print(f"plain tk.train: {a:.2f} s ({1000 * a / args.steps:.1f} ms/step)")
    print(f"with TrainPanel: {b:.2f} s ({1000 * b / args.steps:.1f} ms/step)")
    print(f"ratio: {b / a:.3f}")


if __name__ == "__main__":
    main()
