"""`make demo`: teach the default model (SmolLM2-135M-Instruct) its new name with LoRA, on a CPU.

Shows the answer to "Who are you?" before and after, the loss falling, and where the adapter,
trainer_log.jsonl and training_loss.png were saved. Runs in a few minutes on 2 cores.
"""

import sys
from pathlib import Path

import tunekit as tk

CONFIG = Path(__file__).with_name("demo_identity.yaml")
QUESTIONS = ["Who are you?", "What is your name?"]


def main(argv: list[str]) -> None:
    cfg = tk.load_config(CONFIG, *argv)
    base, tokenizer = tk.load_for_inference(cfg.model_name_or_path)
    before = tk.generate(base, tokenizer, QUESTIONS, max_new_tokens=48)
    del base

    print(f"\n== Training: SFT with LoRA on '{cfg.dataset}' ({cfg.max_steps} steps) ==", flush=True)
    result = tk.train(cfg)
    after = tk.generate(result.model, result.tokenizer, QUESTIONS, max_new_tokens=48)

    losses = [(r["step"], r["loss"]) for r in tk.read_log(result.log_path) if "loss" in r]
    print("\n== Loss ==")
    for step, loss in losses:
        print(f"  step {step:>4}  loss {loss:.3f}  {'#' * max(1, round(loss * 10))}")
    print("\n== Before and after ==")
    for question, old, new in zip(QUESTIONS, before, after):
        print(f"  Q: {question}\n  before: {old}\n  after:  {new}\n")
    out = Path(result.output_dir)
    print("== Saved ==")
    print(f"  adapter:    {out}/adapter_model.safetensors")
    print(f"  log:        {result.log_path}")
    for plot in result.plots:
        print(f"  plot:       {plot}")
    print(f"\nTalk to it: .venv/bin/tunekit chat --adapter {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
