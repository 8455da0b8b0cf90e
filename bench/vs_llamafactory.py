"""tunekit against LLaMA-Factory 0.9.5, head to head: one YAML through both CLIs.

    python bench/vs_llamafactory.py                     # sft and dpo, 2 repeats, 8 steps per run
    python bench/vs_llamafactory.py --stages sft,dpo,kto,rm --repeats 3 --steps 12

``make bench-vs-llamafactory`` runs the first line. The first call builds LLaMA-Factory's own venv in
``bench/.lf-venv`` (``llamafactory==0.9.5`` without its dependencies, then its requirements with
``torch==2.13.0``; a stub ``torchaudio`` package, as no torchaudio wheel matches torch 2.13 and 0.9.5
imports it unconditionally; ``DISABLE_VERSION_CHECK=1`` at run time). No torchvision is installed.

The YAML (LLaMA-Factory's keys): the default model (SmolLM2-135M-Instruct) as a local folder, LoRA r8
alpha 16 on all linear layers, ``template: chatml``, ``cutoff_len: 256``, batch 4, lr 1e-4, logging every
step, in a data folder the benchmark writes: 200 alpaca rows of 107-251 tokens (several of the bundled
``alpaca_en_demo`` questions asked together), 200 ranking pairs built the same way from ``dpo_en_demo``
(dpo, rm) and 200 kto rows from ``kto_en_demo``. Each stage runs, in fresh processes and alternating:

- ``llamafactory`` : ``llamafactory-cli train bench.yaml`` (its default: activation checkpointing on);
- ``tunekit``      : ``tunekit train bench.yaml`` (tunekit's own choices);
- ``llamafactory-nockpt`` once per stage: the same plus ``disable_gradient_checkpointing=true``, the
  memory bar of the issue ("no more peak memory than LLaMA-Factory with checkpointing off").

Seconds per step are the gaps between the arrivals of the step lines in each tool's
``trainer_log.jsonl`` (polled every 10 ms), median after the first two steps. Peak RSS is the largest
sum of resident memory over the CLI's process tree (sampled every 50 ms). Tokens per step are each
tool's own: batch size times the mean tokens of a training row as that tool tokenized it (LLaMA-Factory's
``tokenized_path`` dump; tunekit's trainer dataset), so a system prompt one side adds shows. Writes
``bench/results-vs-llamafactory.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = HERE / ".runs" / "vs-llamafactory"
LF_VENV = HERE / ".lf-venv"
LF_REQUIREMENTS = [  # llamafactory 0.9.5's own requirements, at the versions the issue names, torchvision left out
    "transformers==5.6.0", "trl==0.24.0", "peft==0.18.1", "accelerate==1.11.0", "datasets==4.0.0", "av<=16.0.0",
    "einops", "fastapi", "fire", "gradio<=5.50.0", "hf-transfer", "matplotlib>=3.7.0", "modelscope", "numpy",
    "omegaconf", "pandas", "protobuf", "pydantic", "pyyaml", "safetensors", "scipy", "sentencepiece",
    "sse-starlette", "tiktoken", "torchdata==0.11.0", "tyro<0.9.0", "uvicorn",
]
LO, HI, ROWS = 107, 251, 200  # token band of a row (ChatML, no system prompt) and rows per set


# ----------------------------------------------------------------------------------------------- set-up
def ensure_lf_venv() -> Path:
    """``bench/.lf-venv`` with LLaMA-Factory 0.9.5 (built once; a stamp file marks it done)."""
    stamp = LF_VENV / ".installed"
    if stamp.exists():
        return LF_VENV / "bin" / "llamafactory-cli"
    pip = [str(LF_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    print(f"building LLaMA-Factory's venv in {LF_VENV} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LF_VENV)], check=True)
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + ["--no-deps", "llamafactory==0.9.5"], check=True)
    constraints = LF_VENV / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")
    subprocess.run(pip + ["-c", str(constraints)] + LF_REQUIREMENTS, check=True)
    site = subprocess.run([str(LF_VENV / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    stub = Path(site) / "torchaudio"  # imported by llamafactory.data.mm_plugin; audio is never used here
    stub.mkdir(exist_ok=True)
    (stub / "__init__.py").write_text('"""A stub: no torchaudio wheel matches torch 2.13 (see bench/vs_llamafactory.py)."""\n'
                                      '__version__ = "2.13.0"\n')
    stamp.touch()
    return LF_VENV / "bin" / "llamafactory-cli"


def _chatml_length(tokenizer, user: str, answer: str) -> int:
    text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n"
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _numbered(parts: list[str]) -> str:
    return "\n".join(f"{i + 1}. {p}" for i, p in enumerate(parts)) if len(parts) > 1 else parts[0]


def _compose(items: list, length, rng: random.Random) -> list:
    """``ROWS`` groups of ``items`` whose joined length (``length(group)``) lies in [LO, HI]; each group
    aims at a length drawn uniformly from the band, so rows spread over it."""
    groups, start = [], 0
    while len(groups) < ROWS:
        target, group = rng.randint(LO, HI), []
        for offset in range(len(items)):
            candidate = group + [items[(start + offset) % len(items)]]
            if length(candidate) > HI:
                continue
            group = candidate
            if length(group) >= target:
                break
        start += len(group) + 1
        if LO <= length(group) <= HI:
            groups.append(group)
    return groups


def write_data(tokenizer, folder: Path) -> None:
    """The benchmark's data folder: alpaca rows, ranking pairs and kto rows of LO-HI tokens, made of the
    bundled demo sets (several questions asked together, answered in order)."""
    demo = ROOT / "tunekit" / "data" / "demo"
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)

    alpaca = json.loads((demo / "alpaca_en_demo.json").read_text())
    qa = [((r["instruction"] + ("\n" + r["input"] if r["input"] else "")), r["output"]) for r in alpaca]
    sft = [{"instruction": _numbered([q for q, _ in g]), "input": "", "output": _numbered([a for _, a in g])}
           for g in _compose(qa, lambda g: _chatml_length(tokenizer, _numbered([q for q, _ in g]),
                                                          _numbered([a for _, a in g])), rng)]

    pairs = json.loads((demo / "dpo_en_demo.json").read_text())
    triples = [(p["conversations"][-1]["value"], p["chosen"]["value"], p["rejected"]["value"]) for p in pairs
               if len(p["conversations"]) == 1]

    def pair_length(g):
        prompt = _numbered([t[0] for t in g])
        return max(_chatml_length(tokenizer, prompt, _numbered([t[k] for t in g])) for k in (1, 2))

    dpo = [{"conversations": [{"from": "human", "value": _numbered([t[0] for t in g])}],
            "chosen": {"from": "gpt", "value": _numbered([t[1] for t in g])},
            "rejected": {"from": "gpt", "value": _numbered([t[2] for t in g])}}
           for g in _compose(triples, pair_length, rng)]

    kto_rows = json.loads((demo / "kto_en_demo.json").read_text())
    kto = []
    for label in (True, False):  # groups of one label, so that the joined answer is all good or all bad
        same = [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in kto_rows
                if r["label"] is label and len(r["messages"]) == 2]
        groups = _compose(same, lambda g: _chatml_length(tokenizer, _numbered([q for q, _ in g]),
                                                         _numbered([a for _, a in g])), rng)[: ROWS // 2]
        kto += [{"messages": [{"role": "user", "content": _numbered([q for q, _ in g])},
                              {"role": "assistant", "content": _numbered([a for _, a in g])}], "label": label}
                for g in groups]
    rng.shuffle(kto)

    for name, rows in (("bench_sft", sft), ("bench_pairs", dpo), ("bench_kto", kto)):
        (folder / f"{name}.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    info = {
        "bench_sft": {"file_name": "bench_sft.json"},
        "bench_pairs": {"file_name": "bench_pairs.json", "ranking": True, "formatting": "sharegpt",
                        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "bench_kto": {"file_name": "bench_kto.json", "formatting": "sharegpt",
                      "columns": {"messages": "messages", "kto_tag": "label"},
                      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                               "assistant_tag": "assistant"}},
    }
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")


DATASET = {"sft": "bench_sft", "dpo": "bench_pairs", "rm": "bench_pairs", "kto": "bench_kto"}


def write_yaml(stage: str, model: Path, steps: int, path: Path) -> Path:
    """The stage's YAML at ``path``, reading the data folder RUNS/data and writing under RUNS/out."""
    lines = [
        f"model_name_or_path: {model}", "trust_remote_code: true", "",
        f"stage: {stage}", "do_train: true", "finetuning_type: lora", "lora_target: all", "lora_rank: 8",
        "lora_alpha: 16", *(["pref_beta: 0.1", "pref_loss: sigmoid"] if stage == "dpo" else []),
        *(["pref_beta: 0.1"] if stage == "kto" else []), "",
        f"dataset: {DATASET[stage]}", f"dataset_dir: {RUNS / 'data'}", "template: chatml", "cutoff_len: 256",
        "max_samples: 200", "overwrite_cache: true", "",
        f"output_dir: {RUNS / 'out'}", "logging_steps: 1", "save_steps: 100000", "overwrite_output_dir: true",
        "report_to: none", "",
        "per_device_train_batch_size: 4", "gradient_accumulation_steps: 1", "learning_rate: 1.0e-4",
        f"max_steps: {steps}", "lr_scheduler_type: cosine", "warmup_ratio: 0.1",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------- one run
def _tree_rss(root) -> int:
    import psutil

    total = 0
    try:
        for proc in [root, *root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def run_cli(command: list[str], output_dir: Path, env: dict) -> dict:
    """Run one training CLI; the arrival time of each step line of its trainer_log.jsonl, and peak RSS."""
    import psutil

    log = output_dir / "trainer_log.jsonl"
    if log.exists():
        log.unlink()
    stderr = output_dir.parent / (output_dir.name + ".log")
    stderr.parent.mkdir(parents=True, exist_ok=True)
    with open(stderr, "w") as err:
        proc = subprocess.Popen(command, stdout=err, stderr=subprocess.STDOUT, env=env, cwd=output_dir.parent)
        root = psutil.Process(proc.pid)
        arrivals, seen, size, peak, last_rss = [], 0, 0, 0, 0.0
        while proc.poll() is None:
            now = time.perf_counter()
            if log.exists() and log.stat().st_size > size:
                size = log.stat().st_size
                lines = log.read_text().splitlines()
                for line in lines[seen:]:
                    if line.endswith("}"):
                        record = json.loads(line)
                        if "loss" in record:
                            arrivals.append((now, record))
                        seen += 1
            if now - last_rss > 0.05:
                peak, last_rss = max(peak, _tree_rss(root)), now
            time.sleep(0.01)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (see {stderr}):\n" + stderr.read_text()[-3000:])
    times = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    return {"step_times": times, "s_per_step": statistics.median(times[1:]) if len(times) > 1 else None,
            "first_loss": arrivals[0][1]["loss"], "last_loss": arrivals[-1][1]["loss"], "steps": len(arrivals),
            "peak_rss": peak}


# ------------------------------------------------------------------------------------------ tokens per step
def _lf_tokens(cli: Path, yaml: Path, folder: Path, env: dict, batch: int) -> float:
    """LLaMA-Factory's tokens per step: its own tokenized rows (``tokenized_path``), mean length times batch."""
    import datasets

    dump = folder / "lf-tokenized"
    if not dump.exists():
        subprocess.run([str(cli), "train", str(yaml), f"tokenized_path={dump}", "max_steps=1",
                        f"output_dir={folder / 'lf-count'}"], check=True, env=env, capture_output=True,
                       cwd=folder)
    rows = datasets.load_from_disk(str(dump))["train"]
    return batch * statistics.mean(_row_tokens(rows))


def _row_tokens(rows) -> list[int]:
    """Tokens a training row puts through the trained forward: its sequence, or its chosen and rejected
    sequences (the prompt counted in each); kto's KL sequences are not counted on either side."""
    names = set(rows.column_names)
    if {"chosen_input_ids", "rejected_input_ids"} <= names:  # LLaMA-Factory's pairs (dpo, rm)
        return [len(r["chosen_input_ids"]) + len(r["rejected_input_ids"]) for r in rows]
    if {"prompt_ids", "chosen_ids", "rejected_ids"} <= names:  # trl's DPO rows: the prompt once, with each answer
        return [2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows]
    if {"chosen_ids", "rejected_ids"} <= names:  # trl's reward-model rows: whole sequences
        return [len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows]
    if {"prompt_ids", "completion_ids"} <= names:  # trl's KTO rows
        return [len(r["prompt_ids"]) + len(r["completion_ids"]) for r in rows]
    return [len(ids) for ids in rows["input_ids"]]  # sft (both), LLaMA-Factory's kto


def _tunekit_tokens(yaml: Path, batch: int) -> float:
    """tunekit's tokens per step: the trainer's own training rows, mean length times batch."""
    code = ("import json,sys,statistics; sys.path.insert(0, %r); from vs_llamafactory import _row_tokens;"
            "from tunekit.run import plan, build; import tunekit as tk;"
            "p = plan(tk.load_config(%r, overwrite_output_dir=True, max_steps=1));"
            "t = build(p, progress=False).trainer;"
            "print('TOKENS', statistics.mean(_row_tokens(t.train_dataset)))") % (str(HERE), str(yaml))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=yaml.parent)
    return batch * float(next(l for l in out.stdout.splitlines() if l.startswith("TOKENS")).split()[1])


# ------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default="sft,dpo")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--no-nockpt", action="store_true", help="skip LLaMA-Factory's checkpointing-off run")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from tunekit.models.builtin import smollm2_folder

    cli = ensure_lf_venv()
    model = smollm2_folder()
    RUNS.mkdir(parents=True, exist_ok=True)
    write_data(AutoTokenizer.from_pretrained(model), RUNS / "data")
    env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    tunekit_cli = Path(sys.executable).parent / "tunekit"
    rows, out = [], HERE / "results-vs-llamafactory.json"
    for stage in args.stages.split(","):
        folder = RUNS / stage
        folder.mkdir(parents=True, exist_ok=True)
        yaml = write_yaml(stage, model, args.steps, folder / "bench.yaml")
        sides = {"llamafactory": [str(cli), "train", str(yaml)], "tunekit": [str(tunekit_cli), "train", str(yaml)]}
        runs = {name: [] for name in sides}
        order = [(r, name) for r in range(args.repeats) for name in sides]
        if not args.no_nockpt:
            order.append((0, "llamafactory-nockpt"))
            sides["llamafactory-nockpt"] = sides["llamafactory"] + ["disable_gradient_checkpointing=true"]
            runs["llamafactory-nockpt"] = []
        for repeat, name in order:
            output_dir = folder / f"{name}-{repeat}"
            result = run_cli(sides[name] + [f"output_dir={output_dir}"], output_dir, env)
            runs[name].append(result)
            print(f"{stage:<4} {name:<20} run {repeat}: {result['s_per_step']:.2f} s/step, peak RSS "
                  f"{result['peak_rss'] / 2**30:.2f} GiB, loss {result['first_loss']:.3f} -> {result['last_loss']:.3f}",
                  flush=True)
        tokens = {"llamafactory": _lf_tokens(cli, yaml, folder, env, 4), "tunekit": _tunekit_tokens(yaml, 4)}
        row = {"stage": stage, "steps": args.steps, "repeats": args.repeats,
               "tokens_per_step": tokens, "runs": runs,
               "s_per_step": {n: [r["s_per_step"] for r in rs] for n, rs in runs.items()},
               "peak_rss": {n: [r["peak_rss"] for r in rs] for n, rs in runs.items()},
               "ratio": [t["s_per_step"] / l["s_per_step"] for t, l in zip(runs["tunekit"], runs["llamafactory"])]}
        rows.append(row)
    kept = [r for r in json.loads(out.read_text()) if r["stage"] not in {r["stage"] for r in rows}] if out.exists() else []
    out.write_text(json.dumps(kept + rows, indent=1) + "\n")
    print_table(kept + rows)
    print(f"written: {out}")


def print_table(rows: list[dict]) -> None:
    gib = lambda values: ", ".join(f"{v / 2**30:.1f}" for v in values)  # noqa: E731
    secs = lambda values: ", ".join(f"{v:.2f}" for v in values)  # noqa: E731
    print("\n| stage | LLaMA-Factory s/step | tunekit s/step | tunekit / LF | tokens/step LF, tunekit "
          "| peak RSS LF (GiB) | peak RSS LF no ckpt | peak RSS tunekit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        s, m = r["s_per_step"], r["peak_rss"]
        print(f"| {r['stage']} | {secs(s['llamafactory'])} | {secs(s['tunekit'])} | {secs(r['ratio'])} | "
              f"{r['tokens_per_step']['llamafactory']:.0f}, {r['tokens_per_step']['tunekit']:.0f} | "
              f"{gib(m['llamafactory'])} | {gib(m.get('llamafactory-nockpt', []))} | {gib(m['tunekit'])} |")


if __name__ == "__main__":
    main()
