"""Preference stages on a task the tiny model can learn: answers that say "yes ... good" are
preferred to answers that say "no ... bad". Held-out pairs use words never seen in training."""

import random
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import tunekit as tk
from conftest import write_dataset
from tunekit.data import IGNORE_INDEX, encode_chat

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "garden", "candle", "bridge", "forest", "rocket",
         "violin", "planet", "meadow", "castle", "pepper", "window", "harbor", "island", "lantern", "marble",
         "orchid", "parrot", "saddle", "tunnel", "valley", "walnut", "yogurt", "zebra", "anchor", "basket", "cactus"]
HELD_OUT = ["copper", "dolphin", "falcon", "glacier", "hammock", "jasmine", "kettle", "lemon"]


def pair(word):
    return (f"What do you think of the {word}?", f"Yes, the {word} is good.", f"No, the {word} is bad.")


@pytest.fixture
def prefs(tmp_path):
    folder = tmp_path / "data"
    rows = [pair(w) for w in WORDS]
    write_dataset(folder, "prefs", [
        {"conversations": [{"from": "human", "value": p}], "chosen": {"from": "gpt", "value": c},
         "rejected": {"from": "gpt", "value": r}} for p, c, r in rows],
        {"formatting": "sharegpt", "ranking": True,
         "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}})
    write_dataset(folder, "prefs_sft", [{"instruction": p, "input": "", "output": c} for p, c, r in rows], {})
    unpaired = [{"instruction": p, "input": "", "output": a, "label": good}
                for p, c, r in rows for a, good in ((c, True), (r, False))]
    random.Random(0).shuffle(unpaired)
    write_dataset(folder, "unpaired", unpaired, {"columns": {"kto_tag": "label"}})
    return str(folder)


def answer_logprob(model, tokenizer, prompt, answer):
    """Sum of log-probabilities of the answer's tokens given the prompt (chat template applied)."""
    row = encode_chat(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], 512)
    ids = torch.tensor([row["input_ids"]])
    labels = torch.tensor([row["labels"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1]
    target = labels[:, 1:]
    logp = logits.log_softmax(-1).gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
    return float((logp * (target != IGNORE_INDEX)).sum())


def held_out_margin(model, tokenizer):
    model.eval()
    margins = [answer_logprob(model, tokenizer, p, c) - answer_logprob(model, tokenizer, p, r)
               for p, c, r in map(pair, HELD_OUT)]
    return sum(margins) / len(margins)


@pytest.fixture(scope="module")
def base():
    return tk.load_for_inference("tiny-random-llama")


def test_load_data_gives_canonical_preference_and_kto_rows(tiny, prefs):
    pairs = tk.load_data({**tiny, "stage": "dpo", "dataset": "prefs", "dataset_dir": prefs}, None)["train"]
    assert pairs[0] == {"prompt": [{"role": "user", "content": pair(WORDS[0])[0]}],
                        "chosen": [{"role": "assistant", "content": pair(WORDS[0])[1]}],
                        "rejected": [{"role": "assistant", "content": pair(WORDS[0])[2]}]}
    kto = tk.load_data({**tiny, "stage": "kto", "dataset": "unpaired", "dataset_dir": prefs}, None)["train"]
    assert set(kto.column_names) == {"prompt", "completion", "label"}
    assert sum(kto["label"]) == len(kto) // 2
    row = next(r for r in kto if r["label"])
    assert row["completion"][0]["content"].startswith("Yes") and row["prompt"][0]["role"] == "user"


def test_reward_model_learns_the_preference_and_reloads(tiny, prefs):
    result = tk.train({**tiny, "stage": "rm", "dataset": "prefs", "dataset_dir": prefs, "max_steps": 40,
                       "per_device_train_batch_size": 8, "learning_rate": 1e-2, "lora_rank": 16, "val_size": 8,
                       "logging_steps": 5, "plot_loss": True})
    prompts, chosen, rejected = zip(*map(pair, HELD_OUT))
    model, tokenizer = result.model, result.tokenizer
    good = tk.score(model, tokenizer, list(prompts), list(chosen))
    bad = tk.score(model, tokenizer, list(prompts), list(rejected))
    accuracy = sum(g > b for g, b in zip(good, bad)) / len(good)
    assert accuracy >= 0.8, (good, bad)
    log = tk.read_log(result.log_path)
    assert any("accuracy" in r for r in log) and "eval_accuracy" in result.metrics
    assert any(p.endswith("training_accuracy.png") for p in result.plots)

    reloaded, tok2 = tk.load_reward_model(result.output_dir)
    assert tk.score(reloaded, tok2, list(prompts), list(chosen)) == pytest.approx(good, abs=1e-4)


@pytest.mark.parametrize("loss", ["sigmoid", "hinge", "ipo", "orpo", "simpo"])
def test_dpo_family_widens_the_held_out_margin(tiny, prefs, base, loss):
    start = held_out_margin(*base)
    lr = 5e-3 if loss in ("orpo", "simpo") else 2e-3
    result = tk.train({**tiny, "stage": "dpo", "pref_loss": loss, "dataset": "prefs", "dataset_dir": prefs,
                       "max_steps": 25, "per_device_train_batch_size": 8, "learning_rate": lr, "lora_rank": 16,
                       "logging_steps": 5})
    end = held_out_margin(result.model, result.tokenizer)
    assert end > start + 3.0, (start, end)
    logged = [r for r in tk.read_log(result.log_path) if "loss" in r]
    assert all({"rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"} <= set(r)
               for r in logged)


def test_kto_widens_the_margin_and_needs_a_batch_of_two(tiny, prefs, base):
    start = held_out_margin(*base)
    result = tk.train({**tiny, "stage": "kto", "dataset": "unpaired", "dataset_dir": prefs, "max_steps": 25,
                       "per_device_train_batch_size": 8, "learning_rate": 2e-3, "lora_rank": 16, "logging_steps": 5})
    assert held_out_margin(result.model, result.tokenizer) > start + 3.0
    assert any("kl" in r for r in tk.read_log(result.log_path))
    # LLaMA-Factory's kto example has a batch of 1 and 8 accumulation steps: it trains with 2 x 4, and says so
    with pytest.warns(UserWarning, match=r"per_device_train_batch_size 1 -> 2 and gradient_accumulation_steps 8 -> 4"):
        small = tk.train({**tiny, "stage": "kto", "dataset": "unpaired", "dataset_dir": prefs, "max_steps": 1,
                          "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
                          "output_dir": tiny["output_dir"] + "-batch1"})
    assert small.trainer.args.per_device_train_batch_size == 2 and small.trainer.args.gradient_accumulation_steps == 4


def test_lora_reference_is_the_base_model_with_the_adapter_disabled(tiny, prefs, base):
    result = tk.train({**tiny, "stage": "dpo", "dataset": "prefs", "dataset_dir": prefs, "max_steps": 5,
                       "per_device_train_batch_size": 4, "learning_rate": 1e-2})
    trainer = result.trainer
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.model, batch)
    base_model, _ = base
    ids, mask = batch["input_ids"], batch["completion_mask"]
    with torch.no_grad():
        logits = base_model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1]
        policy_logits = trainer.model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1]

    def logps(lg):
        token = lg.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return (token * mask[:, 1:]).sum(-1)

    expected = logps(logits)
    assert torch.allclose(torch.cat([ref_chosen, ref_rejected]), expected, atol=1e-3)
    assert not torch.allclose(logps(policy_logits), expected, atol=1e-3)  # the adapter did train


class ReferenceAtEnd(TrainerCallback):
    """At the end of training, the held-out margin as computed by trl's reference adapter and by the policy."""

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        from trl.trainer.utils import use_adapter

        self.adapters = set(model.peft_config)
        with use_adapter(model, "ref"):
            self.reference = held_out_margin(model, processing_class)
        self.policy = held_out_margin(model, processing_class)


def test_dpo_from_an_sft_adapter_uses_that_adapter_as_reference(tiny, prefs, tmp_path):
    sft = tk.train({**tiny, "dataset": "prefs_sft", "dataset_dir": prefs, "output_dir": str(tmp_path / "sft"),
                    "max_steps": 15, "learning_rate": 1e-2})
    sft_margin = held_out_margin(*tk.load_for_inference("tiny-random-llama", sft.output_dir))
    check = ReferenceAtEnd()
    result = tk.train({**tiny, "stage": "dpo", "dataset": "prefs", "dataset_dir": prefs, "max_steps": 10,
                       "adapter_name_or_path": sft.output_dir, "learning_rate": 5e-3}, callbacks=[check])
    assert check.adapters == {"default", "ref"}
    assert check.reference == pytest.approx(sft_margin, abs=1e-3)  # the reference is the SFT adapter
    assert check.policy != pytest.approx(sft_margin, abs=1e-2)  # while the policy moved on
    assert not (Path(result.output_dir) / "ref").exists()  # only the trained adapter is saved
    assert set(result.model.peft_config) == {"default"}


def test_full_reward_model_saves_and_reloads_as_a_classifier(tiny, prefs):
    result = tk.train({**tiny, "stage": "rm", "finetuning_type": "full", "dataset": "prefs", "dataset_dir": prefs,
                       "max_steps": 2})
    prompts, chosen, _ = zip(*map(pair, HELD_OUT))
    before = tk.score(result.model, result.tokenizer, list(prompts), list(chosen))
    model, tokenizer = tk.load_reward_model(result.output_dir)
    assert type(model).__name__.endswith("ForSequenceClassification")
    assert tk.score(model, tokenizer, list(prompts), list(chosen)) == pytest.approx(before, abs=1e-4)


def test_a_language_model_is_not_a_reward_model(tiny):
    sft = tk.train({**tiny, "max_steps": 1})
    with pytest.raises(tk.ConfigError, match="not a reward model"):
        tk.load_reward_model(sft.output_dir)


def test_orpo_and_simpo_open_without_trl_experimental_warnings(tiny, prefs, tmp_path):
    from conftest import run_cli

    config = tmp_path / "orpo.yaml"
    tk.load_config({**tiny, "stage": "dpo", "pref_loss": "orpo", "dataset": "prefs", "dataset_dir": prefs,
                    "max_steps": 1}).to_yaml(config)
    proc = run_cli("train", config)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experimental" not in proc.stderr.lower()


@pytest.mark.parametrize("stage,dataset", [("dpo", "dpo_en_demo"), ("kto", "kto_en_demo")])
def test_cached_reference_log_probs_give_the_same_losses(tiny, stage, dataset, capsys):
    config = {**tiny, "stage": stage, "dataset": dataset, "max_samples": 8, "max_steps": 4}  # 16 rows seen of 8
    fresh = tk.train({**config, "output_dir": tiny["output_dir"] + "-fresh", "precompute_ref_log_probs": False})
    assert not fresh.trainer.args.precompute_ref_log_probs
    capsys.readouterr()
    cached = tk.train(config)  # rows are seen twice: the reference is computed once per row
    assert cached.trainer.args.precompute_ref_log_probs
    assert "reference log-probs: computed once per row and cached (each row is seen 2.0 times" in capsys.readouterr().out
    loss = lambda result: [r["loss"] for r in tk.read_log(result.log_path) if "loss" in r]  # noqa: E731
    assert loss(cached) == pytest.approx(loss(fresh), rel=1e-6)
    once = tk.train({**config, "max_steps": 1, "output_dir": tiny["output_dir"] + "-once"})
    assert not once.trainer.args.precompute_ref_log_probs  # 4 of 8 rows seen once: nothing to cache
