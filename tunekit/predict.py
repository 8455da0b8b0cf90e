"""``do_predict``: what a stage writes for every held-out row (``eval_dataset`` or the ``val_size`` split).

- a stage that generates (sft, with ``predict_with_generate: true``): an answer per row, batched with left
  padding under the generation keys (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``, ``top_k``,
  ``repetition_penalty``); ``generated_predictions.jsonl`` holds ``prompt``, ``predict`` and ``label`` per row,
  and ``predict_results.json`` the BLEU-4 and ROUGE-1/2/L of the answers against the labels (``metrics.py``)
  under LLaMA-Factory's key names: ``predict_bleu-4``, ``predict_rouge-1``, ``predict_rouge-2``, ``predict_rouge-l``;
- a stage that scores (rm): the reward of each row's chosen and rejected answer (``{"chosen": 1.25,
  "rejected": -0.5}`` per line, as LLaMA-Factory writes them), and ``predict_accuracy`` / ``predict_margin``.
Both write into ``output_dir``, and the metrics go into ``all_results.json`` too.
"""

from __future__ import annotations

import json
import os
import time

from .data import load_rows, prompt_ids, split_answer
from .distributed import is_main_process, say
from .errors import DataError
from .outputs import save_results

PREDICTIONS = "generated_predictions.jsonl"


def predict(p, built) -> dict:
    """Run ``p``'s stage's prediction on the held-out rows and write its files; returns the ``predict_*`` metrics."""
    started = time.perf_counter()
    if p.stage.predict == "generate":
        lines, metrics, batches = _answers(p.cfg, built.trainer.model, built.tokenizer)
    else:
        lines, metrics, batches = _scores(p.cfg, built.trainer)
    runtime = time.perf_counter() - started
    metrics = {f"predict_{k}": v for k, v in metrics.items()} | {
        "predict_runtime": round(runtime, 4), "predict_samples_per_second": round(len(lines) / runtime, 3),
        "predict_steps_per_second": round(batches / runtime, 3)}
    if is_main_process():
        os.makedirs(p.cfg.output_dir, exist_ok=True)
        with open(os.path.join(p.cfg.output_dir, PREDICTIONS), "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        save_results(p.cfg.output_dir, "predict", metrics)
    say(f"[tunekit] predictions for {len(lines)} held-out rows: {os.path.join(p.cfg.output_dir, PREDICTIONS)}; "
        + ", ".join(f"{k} {v:g}" for k, v in metrics.items() if not k.endswith(("_second", "_runtime"))))
    return metrics


def held_out_name(cfg) -> str:
    return f"eval_dataset {cfg.eval_dataset!r}" if cfg.eval_dataset else f"the val_size split of {cfg.dataset!r}"


def _answers(cfg, model, tokenizer) -> tuple[list[dict], dict, int]:
    """Generate an answer for every held-out conversation; score them against the data set's answers."""
    from .generation import generate_ids
    from .metrics import similarity

    rows = load_rows(cfg, "chat")["eval"]
    prompts, labels = [], []
    tools = rows["tools"] if "tools" in rows.column_names else [None] * len(rows)
    for number, (messages, row_tools) in enumerate(zip(rows["messages"], tools), start=1):
        prompt, answer = split_answer(messages)
        if not answer.strip():
            raise DataError(f"row {number} of {held_out_name(cfg)} has no answer after its last user turn; "
                            "predict_with_generate scores each generated answer against the row's answer "
                            "(BLEU-4, ROUGE): give held-out rows with answers")
        prompts.append(prompt_ids(tokenizer, prompt, row_tools)[: cfg.cutoff_len])
        labels.append(answer)
    options = dict(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample, temperature=cfg.temperature,
                   top_p=cfg.top_p, top_k=cfg.top_k, repetition_penalty=cfg.repetition_penalty, seed=cfg.seed)
    answers = generate_ids(model, tokenizer, prompts, batch_size=cfg.per_device_eval_batch_size, **options)
    predictions = [tokenizer.decode(ids, skip_special_tokens=cfg.skip_special_tokens).strip() for ids in answers]
    lines = [{"prompt": tokenizer.decode(ids, skip_special_tokens=False), "predict": predict, "label": label}
             for ids, predict, label in zip(prompts, predictions, labels)]
    batches = -(-len(prompts) // cfg.per_device_eval_batch_size)
    return lines, similarity(predictions, labels), batches


def _scores(cfg, trainer) -> tuple[list[dict], dict, int]:
    """The reward model's score of each held-out pair's chosen and rejected answer, tokenized as it trained."""
    from .models import score_ids

    rows = trainer.eval_dataset
    size = cfg.per_device_eval_batch_size
    rewards = score_ids(trainer.model, list(rows["chosen_ids"]) + list(rows["rejected_ids"]),
                        trainer.processing_class.pad_token_id, size)
    chosen, rejected = rewards[: len(rows)], rewards[len(rows):]
    margins = [c - r for c, r in zip(chosen, rejected)]
    metrics = {"accuracy": sum(m > 0 for m in margins) / max(len(margins), 1),
               "margin": sum(margins) / max(len(margins), 1)}
    lines = [{"chosen": round(c, 2), "rejected": round(r, 2)} for c, r in zip(chosen, rejected)]
    return lines, metrics, -(-2 * len(rows) // size)
