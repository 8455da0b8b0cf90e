"""What every notebook does besides its lesson, one line each: the smoke switch, finding an earlier
notebook's output, and the closing "where things are" with the commands that reproduce the run.

    MODEL, MAX_STEPS = tk.smoke(MODEL, MAX_STEPS, on=SMOKE)   # the tiny model and 2 steps in smoke mode
    start = tk.trained("saves/02_sft")                         # that folder if a run saved a model there
    tk.where_things_are(form.save("saves/02_sft.yaml"), result)
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .models.builtin import TINY

SMOKE_STEPS = 2


def smoke(*values, on: bool = False):
    """The notebook's parameters, or in smoke mode (``on``, or ``TUNEKIT_SMOKE=1`` as the tests set) the tiny
    random model for the model name (a str) and ``SMOKE_STEPS`` for every count (an int): a run that checks
    the path end to end in seconds and teaches nothing. Returns the values in the order given."""
    if not (on or os.environ.get("TUNEKIT_SMOKE") == "1"):
        return values if len(values) != 1 else values[0]
    swapped = tuple(TINY if isinstance(v, str) else min(v, SMOKE_STEPS) if isinstance(v, int) else v for v in values)
    return swapped if len(swapped) != 1 else swapped[0]


def trained(folder: str | os.PathLike) -> str | None:
    """``folder`` as a str if a run saved a model or a LoRA adapter there, else None."""
    path = Path(folder)
    return str(path) if (path / "adapter_config.json").is_file() or (path / "config.json").is_file() else None


def find_or_train_reward_model(folder: str | os.PathLike, model: str, steps: int = 20) -> str:
    """The reward model in ``folder`` (``03_reward_model``'s output); if there is none, a small one trained
    there now: LoRA on ``model``, ``steps`` steps on ``dpo_en_demo``."""
    if trained(folder):
        return str(folder)
    print(f"No reward model in {folder}: run 03_reward_model.ipynb first for a better one. "
          f"Building a small one now ({steps} steps).")
    from .run import train

    train({"stage": "rm", "model_name_or_path": model, "finetuning_type": "lora", "lora_target": "all",
           "dataset": "dpo_en_demo", "cutoff_len": 256, "per_device_train_batch_size": 4, "learning_rate": 5e-4,
           "max_steps": steps, "output_dir": str(folder), "overwrite_output_dir": True})
    return str(folder)


def find_or_train(folder: str | os.PathLike, config: dict, notebook: str) -> str:
    """The model in ``folder`` (an earlier notebook's output); if there is none, ``config`` trained there now, after
    a line that says which notebook makes a better one."""
    if trained(folder):
        return str(folder)
    print(f"No model in {folder}: run {notebook} first for the one this notebook expects. "
          f"Training a short one now ({config.get('max_steps')} steps).")
    from .run import train

    train({**config, "output_dir": str(folder), "overwrite_output_dir": True})
    return str(folder)


def teacher_answers(config, teacher: str, max_new_tokens: int = 64, rows: int | None = None) -> list[dict]:
    """The teacher's greedy answers to the first ``rows`` training prompts of ``config`` (a distill or grpo config:
    its held-out rows are left out), as conversations: the rows SFT on a teacher's answers trains on (off-policy
    distillation, which ``08_distill`` compares with the on-policy kind)."""
    from .data import prompt_ids
    from .generation import generate_ids
    from .models import load_for_inference
    from .run import load_config, load_data

    cfg = load_config(config)
    model, tokenizer = load_for_inference(teacher)
    prompts = load_data(cfg, tokenizer)["train"]
    prompts = prompts.select(range(min(rows or len(prompts), len(prompts))))
    ids = [prompt_ids(tokenizer, list(row["prompt"])) for row in prompts]
    answers = generate_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens,
                           batch_size=cfg.per_device_eval_batch_size)
    return [{"messages": [*row["prompt"], {"role": "assistant",
                                          "content": tokenizer.decode(answer, skip_special_tokens=True).strip()}]}
            for row, answer in zip(prompts, answers)]


# The shapes of models a learner asks about (their published config.json values): enough for tunekit plan, which
# needs the config and no weights.
SHAPES = {
    "Llama-3.2-1B": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                     "tie_word_embeddings": True},
    "Qwen2.5-7B": {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                   "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                   "tie_word_embeddings": False},
}


def model_shape(name: str, folder: str | os.PathLike = "saves/shapes") -> str:
    """A folder holding only the ``config.json`` of ``name`` (one of ``SHAPES``): what ``tk.plan`` and ``tunekit plan``
    need to predict a run of a model that is not downloaded."""
    import json

    path = Path(folder) / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(SHAPES[name], indent=2))
    return str(path)


def where_things_are(yaml_path: str | os.PathLike, result) -> list[str]:
    """Print what the run wrote and the terminal commands that repeat it, chat with it and export it
    (merged, and as a GGUF file for llama.cpp and Ollama); returns the commands."""
    from .stages import STAGES

    config = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8")) or {}
    stage, out = STAGES[config.get("stage", "sft")], result.output_dir
    model = f"--adapter {out}" if config.get("finetuning_type", "lora") == "lora" else f"--model {out}"
    say = [("the same run:", f"tunekit train {yaml_path}")]
    if stage.multi_process:
        say.append(("data-parallel, 2 processes:", f"torchrun --nproc_per_node 2 -m tunekit train {yaml_path}"))
    if stage.head == "score":  # a reward model scores answers: merged, it is a standalone scorer, not a chat model
        say.append(("merged into one model:", f"tunekit export {model} --export-dir {out}-merged"))
    else:
        say.append(("chat with it:", f"tunekit chat {model}"))
        say.append(("merged, and as GGUF (Ollama):", f"tunekit export {model} --export-dir {out}-export --gguf q8_0"))
    print("outputs in", out, ":", ", ".join(sorted(p.name for p in Path(out).iterdir())))
    print("from a terminal, in this folder:")
    for what, command in say:
        print(f"  {what:<30} {command}")
    if not stage.multi_process:
        print(f"  ({stage.name} trains in one process: torchrun and accelerate launch are for the other stages)")
    commands = [command for _, command in say]
    return commands
