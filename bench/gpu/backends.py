"""backend: hf against backend: unsloth, per stage, on a CUDA GPU (run by bench/gpu/run.sh).

    python bench/gpu/backends.py build MODEL_DIR TOKENIZER_DIR   # a random-init Llama of about 1B parameters
    python bench/gpu/backends.py run MODEL_DIR STAGE BACKEND     # one run, in a fresh process; prints a JSON line
    python bench/gpu/backends.py table RESULTS.jsonl             # the table of every run

The weights are random (speed does not depend on them); the tokenizer is SmolLM2's (49152 tokens),
carried from the development machine. Each run is ``tk.train`` with LoRA r16 on every linear layer,
bf16, batch 8, cutoff 512, on the bundled demo set of its stage, for ``STEPS`` steps; the first
``WARMUP`` are not timed. Each backend keeps its defaults: gradient checkpointing is tunekit's choice
on hf (off when the activations fit, as they do on an H200) and Unsloth's offloaded one on unsloth.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for stages.py's token count
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tunekit

DATASETS = {"sft": "alpaca_en_demo", "dpo": "dpo_en_demo", "kto": "kto_en_demo"}
STEPS, WARMUP = 40, 5


def build(model_dir: str, tokenizer_dir: str) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    print(f"random Llama: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters", flush=True)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)


def run(model_dir: str, stage: str, backend: str) -> dict:
    import torch
    from stages import _batches, _useful_tokens

    import tunekit as tk  # before transformers: with backend unsloth, load_config imports Unsloth first

    cfg = tk.load_config({
        "stage": stage, "backend": backend, "model_name_or_path": model_dir, "dataset": DATASETS[stage],
        "finetuning_type": "lora", "lora_target": "all", "lora_rank": 16, "lora_alpha": 32, "bf16": True,
        "per_device_train_batch_size": 8, "cutoff_len": 512, "learning_rate": 1e-4, "max_steps": STEPS,
        "logging_steps": 1, "save_steps": 100000, "output_dir": f"/tmp/bench-{stage}-{backend}",
        "overwrite_output_dir": True, "report_to": "none", "pref_beta": 0.1,
    })
    from transformers import TrainerCallback

    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            torch.cuda.synchronize()
            ends.append(time.perf_counter())

    torch.cuda.reset_peak_memory_stats()
    result = tk.train(cfg, callbacks=[Clock()], progress=False)
    peak = torch.cuda.max_memory_allocated()
    steps = [b - a for a, b in zip(ends, ends[1:])][WARMUP:]
    tokens = _useful_tokens(result.trainer, _batches(result.trainer, 8))
    losses = [r["loss"] for r in tk.read_log(result.log_path) if isinstance(r.get("loss"), (int, float))]
    return {"stage": stage, "backend": backend, "s_per_step": statistics.median(steps),
            "tokens_per_s": tokens / statistics.median(steps), "peak_gpu_gib": peak / 2**30,
            "first_loss": losses[0], "final_loss": losses[-1], "steps": len(ends)}


def table(path: str) -> None:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.startswith("{")]
    print("| stage | backend | s/step | tokens/s | peak GPU memory | first loss | final loss | hf/unsloth time |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        hf = next((r for r in rows if r["stage"] == row["stage"] and r["backend"] == "hf"), None)
        speedup = f"{hf['s_per_step'] / row['s_per_step']:.2f}x" if hf and row["backend"] != "hf" else ""
        print(f"| {row['stage']} | {row['backend']} | {row['s_per_step']:.3f} | {row['tokens_per_s']:.0f} | "
              f"{row['peak_gpu_gib']:.1f} GiB | {row['first_loss']:.3f} | {row['final_loss']:.3f} | {speedup} |")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "build":
        build(*rest)
    elif command == "run":
        print(json.dumps(run(*rest)), flush=True)
    else:
        table(*rest)
