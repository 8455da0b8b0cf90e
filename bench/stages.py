"""Seconds per optimizer step, per stage: tunekit against a plain PyTorch loop doing the same math.

    python bench/stages.py                   # quick: the tiny model, a few steps (what CI can afford)
    python bench/stages.py --full            # the default model, LoRA r8 on all linear layers, batch 4,
                                             # cutoff 256, 200 rows of each bundled set
    python bench/stages.py --stages sft,dpo  # some stages only

For each stage, two fresh processes run the same config: one trains with ``tk.train``, the other runs
a plain loop (forward, loss, backward, gradient clipping, AdamW; for dpo/kto the reference forward
with the adapter disabled too) over the very batches tunekit's dataloader yields, on the same weights
and adapter settings: its own model, loaded afresh, which trl never patched (trl puts its fused LM head
on the model it trains). Each reports the median seconds per optimizer step after warm-up, the real
(non-pad) tokens per second, and its peak RSS (sampled). tunekit runs here with ``packing: false`` (its sft
default), so that both sides do identical work; for sft more lines show tunekit with ``packing: true``
(where the useful tokens per second is what changes) and with gradient checkpointing on, which is
LLaMA-Factory's default. Rows go to ``bench/results-{quick,full}.json`` (``stage``,
``ratio``, ...). ppo's reward is a rule (answer length), and its tokens per second counts the sampled
answer tokens; its sampling makes steps vary more than the other stages'.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASETS = {"pt": "c4_demo", "sft": "alpaca_en_demo", "rm": "dpo_en_demo", "dpo": "dpo_en_demo", "kto": "kto_en_demo",
            "ppo": "alpaca_en_demo"}


def length_reward(prompts, responses):
    """ppo's reward here: a rule (longer answers score higher), so that no reward model is timed."""
    return [min(len(r), 200) / 100 for r in responses]


def config(stage: str, full: bool, packing: bool, output_dir: str, checkpointing: bool | None = None) -> dict:
    return {
        "gradient_checkpointing": checkpointing,
        "model_name_or_path": "smollm2-135m-instruct" if full else "tiny-random-llama",
        "stage": stage, "dataset": DATASETS[stage], "max_samples": 200, "finetuning_type": "lora",
        "lora_target": "all", "lora_rank": 8, "per_device_train_batch_size": 4,
        "cutoff_len": 256 if full else 128, "learning_rate": 1e-4, "logging_steps": 1, "save_steps": 100000,
        "packing": packing, "output_dir": output_dir, "overwrite_output_dir": True, "report_to": "none",
        "max_steps": (2 + 6) if full else (3 + 10),
        **({"reward_model_type": "function", "max_new_tokens": 32 if full else 8} if stage == "ppo" else {}),
    }


class PeakRSS:
    """The largest resident set size seen while running (sampled every 20 ms from /proc)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _trainer_for(cfg: dict):
    """tunekit's trainer for ``cfg`` (built by the run recipe, not trained): its model, its dataloader."""
    from tunekit.run import build, plan

    p = plan(cfg)
    return build(p, progress=False).trainer, p.cfg


def run_tunekit(cfg: dict, warmup: int) -> dict:
    import tunekit as tk
    from transformers import TrainerCallback

    ends = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    reward = {"reward_fn": length_reward} if cfg["stage"] == "ppo" else {}
    with PeakRSS() as rss:
        result = tk.train(cfg, callbacks=[Clock()], progress=False, **reward)
    steps = [b - a for a, b in zip(ends, ends[1:])][warmup:]
    log = [r for r in tk.read_log(result.log_path) if "loss" in r]
    if cfg["stage"] == "ppo":
        return {"s_per_step": statistics.median(steps), "peak_rss": rss.peak, "first_loss": log[0]["loss"],
                "tokens_per_step": statistics.mean(r["response_length"] for r in log) * cfg["per_device_train_batch_size"]}
    tokens = _useful_tokens(result.trainer, _batches(result.trainer, len(ends)))
    return {"s_per_step": statistics.median(steps), "tokens_per_step": tokens, "peak_rss": rss.peak,
            "first_loss": log[0]["loss"]}


def _batches(trainer, n: int) -> list:
    out = []
    while len(out) < n:
        for batch in trainer.get_train_dataloader():
            out.append(batch)
            if len(out) == n:
                break
    return out


def _useful_tokens(trainer, batches: list) -> float:
    """Mean real (non-pad) tokens per step: the attention masks' ones; for packed rows (which have no
    mask) the mean length of a packed row times the batch size."""
    if "attention_mask" in batches[0]:
        return statistics.mean(sum(float(v.sum()) for k, v in b.items() if k.endswith("attention_mask"))
                               for b in batches)
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    return statistics.mean(lengths) * trainer.args.per_device_train_batch_size


def run_plain_ppo(cfg: dict, warmup: int) -> dict:
    """One rollout (sample, score, policy / reference / value forwards, KL-penalised rewards, GAE) and
    ``ppo_epochs`` clipped updates per step, written out plainly; the math helpers are tunekit's own
    pure functions, which tests/test_ppo.py checks by hand."""
    import torch

    import tunekit as tk
    from tunekit.models import load_model, load_tokenizer
    from tunekit.run import load_data
    from tunekit.stages import ppo_math as ppo
    from tunekit.stages.ppo_trainer import encode_prompt

    parsed = tk.load_config(cfg)
    tokenizer = load_tokenizer(parsed)
    data = load_data(parsed, tokenizer)
    from transformers import set_seed

    set_seed(parsed.seed)
    model, tokenizer = load_model(parsed, tokenizer=tokenizer)
    prompts = [encode_prompt(tokenizer, row["prompt"], parsed) for row in data["train"]]
    texts = [row["prompt"][-1]["content"] for row in data["train"]]
    head = torch.nn.Linear(model.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=parsed.learning_rate, weight_decay=0.0)
    batch, pad, eos = parsed.per_device_train_batch_size, tokenizer.pad_token_id, tokenizer.eos_token_id

    def forward(ids, attn, p_len, values):
        out = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
                    output_hidden_states=values, use_cache=False)
        logp = (out.logits[:, p_len - 1: -1].float() / parsed.temperature).log_softmax(-1)
        chosen = logp.gather(-1, ids[:, p_len:, None]).squeeze(-1)
        return chosen, (head(out.hidden_states[-1][:, p_len - 1: -1]).squeeze(-1) if values else None)

    order = list(range(len(prompts)))  # tunekit's prompt order and sampling seed: the same answers get sampled
    random.Random(parsed.seed).shuffle(order)
    torch.manual_seed(parsed.seed)
    ends, tokens, first = [time.perf_counter()], [], None
    with PeakRSS() as rss:
        for step in range(parsed.max_steps):
            chosen = [prompts[order[(step * batch + i) % len(prompts)]] for i in range(batch)]
            width = max(map(len, chosen))
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in chosen])
            attn = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in chosen])[:, None]).long()
            model.eval()
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=attn, do_sample=True,
                                     max_new_tokens=parsed.max_new_tokens, temperature=parsed.temperature,
                                     top_k=parsed.top_k, top_p=parsed.top_p, pad_token_id=pad, eos_token_id=eos)
            responses = [row[: row.index(eos) + 1] if eos in row else row for row in out[:, width:].tolist()]
            scores = torch.tensor(length_reward([texts[0]] * batch, [tokenizer.decode(r) for r in responses]))
            r_len = max(max(map(len, responses)), 1)
            ids = torch.cat([ids, torch.tensor([r + [pad] * (r_len - len(r)) for r in responses])], 1)
            mask = torch.tensor([[1.0] * len(r) + [0.0] * (r_len - len(r)) for r in responses])
            attn = torch.cat([attn, mask.long()], 1)
            with torch.no_grad():
                old, values = forward(ids, attn, width, True)
                with model.disable_adapter():
                    ref, _ = forward(ids, attn, width, False)
            rewards, _ = ppo.kl_penalised_rewards(scores, old, ref, mask, parsed.ppo_init_kl_coef)
            advantages, returns = ppo.gae(rewards, values, mask, parsed.ppo_gamma, parsed.ppo_lambda)
            advantages = ppo.whiten(advantages, mask)
            model.train()
            for _ in range(parsed.ppo_epochs):
                logprobs, new_values = forward(ids, attn, width, True)
                pg, _ = ppo.policy_loss(logprobs, old, advantages, mask, parsed.ppo_cliprange)
                vf = ppo.value_loss(new_values, values * mask, returns, mask, parsed.ppo_cliprange_value)
                loss = pg + parsed.ppo_vf_coef * vf
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, parsed.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            first = first if first is not None else float(loss)
            tokens.append(float(mask.sum()))
            ends.append(time.perf_counter())
    steps = [b - a for a, b in zip(ends, ends[1:])][warmup:]
    return {"s_per_step": statistics.median(steps), "tokens_per_step": statistics.mean(tokens),
            "peak_rss": rss.peak, "first_loss": first}


def run_plain(cfg: dict, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    trainer, parsed = _trainer_for(cfg)
    stage, beta = parsed.stage, parsed.pref_beta
    batches = _batches(trainer, parsed.max_steps)
    tokens = _useful_tokens(trainer, batches)
    model = _own_model(parsed, trainer)  # not the trainer's: trl patched that one (its fused LM head)
    del trainer
    _release_memory()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=parsed.learning_rate, weight_decay=0.0)
    model.train()

    def logps(ids, attn, completion):
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
        per_token = logits.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return (per_token * completion[:, 1:]).sum(-1)

    def reference(ids, attn, completion):
        with torch.no_grad(), model.disable_adapter():
            return logps(ids, attn, completion)

    def loss_of(batch):
        if stage in ("pt", "sft"):
            return model(**batch).loss
        if stage == "rm":
            rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
            n = len(rewards) // 2
            return -F.logsigmoid(rewards[:n] - rewards[n:]).mean()
        ids, attn, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        if stage == "dpo":
            policy, ref = logps(ids, attn, comp), reference(ids, attn, comp)
            n = len(policy) // 2
            return -F.logsigmoid(beta * ((policy[:n] - ref[:n]) - (policy[n:] - ref[n:]))).mean()
        policy, ref = logps(ids, attn, comp), reference(ids, attn, comp)  # kto
        with torch.no_grad():
            kl_args = (batch["KL_input_ids"], batch["KL_attention_mask"], batch["KL_completion_mask"])
            kl = (logps(*kl_args) - reference(*kl_args)).mean().clamp(min=0)
        reward = policy - ref
        good = batch["label"].bool()
        return torch.where(good, 1 - torch.sigmoid(beta * (reward - kl)), 1 - torch.sigmoid(beta * (kl - reward))).mean()

    ends, first = [time.perf_counter()], None
    with PeakRSS() as rss:
        for batch in batches:
            loss = loss_of(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, parsed.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            first = first if first is not None else float(loss)
            ends.append(time.perf_counter())
    steps = [b - a for a, b in zip(ends, ends[1:])][warmup:]
    return {"s_per_step": statistics.median(steps), "tokens_per_step": tokens, "peak_rss": rss.peak,
            "first_loss": first}


def _own_model(parsed, trainer):
    """The plain loop's model: loaded afresh by tunekit's loader (the same weights, the same LoRA adapter
    settings; a fresh adapter starts at zero, so both sides start from the same loss), never handed to trl."""
    from transformers import set_seed

    from tunekit.models import load_model

    set_seed(parsed.seed)
    model, _ = load_model(parsed, tokenizer=trainer.processing_class, head="score" if parsed.stage == "rm" else None)
    assert "forward" not in vars(getattr(model, "get_base_model", lambda: model)()), "a patched model"
    return model


def _release_memory() -> None:
    """Free the trainer's model before timing, so that the plain loop's peak RSS is its own."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _child(args) -> None:
    cfg = config(args.stage, args.full, args.packing, str(HERE / ".runs" / f"{args.stage}-{args.side}"),
                 True if args.checkpointing else None)
    warmup = 2 if args.full else 3
    plain = run_plain_ppo if args.stage == "ppo" else run_plain
    result = (run_tunekit if args.side == "tunekit" else plain)(cfg, warmup)
    print("RESULT " + json.dumps(result))


def _measure(stage: str, side: str, full: bool, packing: bool = False, checkpointing: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", "--stage", stage, "--side", side]
    command += ["--full"] * full + ["--packing"] * packing + ["--checkpointing"] * checkpointing
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{stage}/{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--stages", default=",".join(DATASETS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--packing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    rows = []
    header = (f"{'stage':<12}{'tunekit s/step':>15}{'plain s/step':>14}{'ratio':>8}{'tokens/s tk':>13}"
              f"{'tokens/s plain':>16}{'RSS tk GiB':>12}{'RSS plain GiB':>15}")
    print(f"mode: {'full (smollm2-135m-instruct)' if args.full else 'quick (tiny-random-llama)'}")
    print(header)
    out = HERE / f"results-{'full' if args.full else 'quick'}.json"
    measured = set(args.stages.split(","))  # rows of stages not measured this time are kept
    kept = [r for r in json.loads(out.read_text()) if r["stage"].split("+")[0] not in measured] if out.exists() else []
    for stage in args.stages.split(","):
        variants = [("", False, False)]
        if stage == "sft":
            variants += [("+packing", True, False), ("+checkpoint", False, True)]
        plain = _measure(stage, "plain", args.full)
        for suffix, packing, checkpointing in variants:
            ours = _measure(stage, "tunekit", args.full, packing, checkpointing)
            row = {"stage": stage + suffix, "tunekit_s_per_step": ours["s_per_step"],
                   "plain_s_per_step": plain["s_per_step"], "ratio": ours["s_per_step"] / plain["s_per_step"],
                   "tunekit_tokens_per_s": ours["tokens_per_step"] / ours["s_per_step"],
                   "plain_tokens_per_s": plain["tokens_per_step"] / plain["s_per_step"],
                   "tunekit_peak_rss": ours["peak_rss"], "plain_peak_rss": plain["peak_rss"],
                   "tunekit_first_loss": ours["first_loss"], "plain_first_loss": plain["first_loss"]}
            rows.append(row)
            print(f"{row['stage']:<12}{row['tunekit_s_per_step']:>15.3f}{row['plain_s_per_step']:>14.3f}"
                  f"{row['ratio']:>8.3f}{row['tunekit_tokens_per_s']:>13.0f}{row['plain_tokens_per_s']:>16.0f}"
                  f"{row['tunekit_peak_rss'] / 2**30:>12.2f}{row['plain_peak_rss'] / 2**30:>15.2f}", flush=True)
            _write(out, kept + rows)  # after every row: a stage that fails later loses nothing measured
    print(f"written: {out}")


def _write(out: Path, rows: list) -> None:
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
