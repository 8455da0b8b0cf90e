"""grpo: the built-in rewards on hand-written answers, learning a rule, the logged metrics, an rm output
as a reward through the CLI, and the config's checks."""

import json
import statistics
import sys
import textwrap
from pathlib import Path

import pytest

import tunekit as tk
from conftest import run_cli
from tunekit import rewards
from tunekit.config import ConfigError


# --- the built-in rewards ------------------------------------------------------------------------------


def as_chat(text):  # trl passes a conversational answer as its messages
    return [{"role": "assistant", "content": text}]


def test_accuracy_rewards_the_right_final_number():
    answers = ["3 + 4 = 7\n#### 7"] * 6 + ["#### 1,250"]
    completions = [
        "3 + 4 = 7\n#### 7",           # right, with the marker
        "It is 7.",                     # right, no marker: the last number counts
        "#### 8",                       # wrong
        "3 + 4 is 7, no wait\n#### 6",  # wrong: the number after the last marker counts
        "I do not know",                # no number at all
        as_chat("#### 7.0"),            # right, as chat messages, written as a float
        "that is #### 1250",            # right, commas ignored
    ]
    assert rewards.accuracy(completions, answer=answers) == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert rewards.accuracy(["#### 5"], answer=["no number here"]) == [0.0]
    assert rewards.extract_answer("working: 2 * 3 = 6\n#### -6") == -6.0


def test_format_wants_a_last_line_with_the_marker_and_a_number():
    completions = [
        "2 + 2 = 4\n#### 4",   # right
        "#### 12",             # right: the answer line alone
        "#### 4 apples",       # text after the number
        "The answer is 4",     # no marker
        "#### \n",             # no number
        "#### 4\nDone.",       # the marker line is not the last
        as_chat("ok\n####  3.5  "),
    ]
    assert rewards.format(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_length_is_free_up_to_half_and_falls_to_minus_one():
    length = rewards.length_penalty(max_new_tokens=64)
    assert length.__name__ == "length"
    ids = [[0] * n for n in (0, 10, 32, 48, 64, 80)]
    assert length(["x"] * 6, completion_ids=ids) == [0.0, 0.0, 0.0, -0.5, -1.0, -1.0]


# --- training -------------------------------------------------------------------------------------------


@pytest.fixture
def grpo(tiny):
    return {**tiny, "stage": "grpo", "dataset": "math_demo", "max_samples": 64, "cutoff_len": 256,
            "max_new_tokens": 8, "num_generations": 4, "per_device_train_batch_size": 8, "temperature": 1.0,
            "top_p": 1.0, "top_k": 0, "learning_rate": 5e-3, "lora_rank": 8, "pref_beta": 0.04}


def test_grpo_learns_a_rule_and_logs_what_it_should(grpo, tmp_path, monkeypatch):
    """The rule: the share of the answer's tokens from the lower half of the vocabulary (1024 tokens), a
    module:function. The random tiny model's logits are too small for LoRA to move them in a test's time,
    so this run trains in full (its reference is then a frozen copy)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    rules.joinpath("vocab_rules.py").write_text(textwrap.dedent('''
        def low_ids(completions, completion_ids, **kwargs):
            return [sum(i < 512 for i in ids) / max(len(ids), 1) for ids in completion_ids]
    '''))
    monkeypatch.syspath_prepend(str(rules))
    result = tk.train(grpo, reward_funcs="vocab_rules:low_ids,length", reward_weights="1,0.5", max_steps=30,
                      finetuning_type="full", learning_rate=1e-2, lr_scheduler_type="constant", num_generations=8,
                      per_device_train_batch_size=16, plot_loss=True)
    log = [r for r in tk.read_log(result.log_path) if "reward" in r]
    assert [r["step"] for r in log] == list(range(1, 31))
    for key in ("reward", "rewards/low_ids/mean", "rewards/length/mean", "reward_group_std", "kl",
                "completions/mean_length", "clip_ratio/region_mean", "reward_std"):
        assert all(isinstance(r.get(key), float) for r in log), key
    first = statistics.mean(r["rewards/low_ids/mean"] for r in log[:5])
    last = statistics.mean(r["rewards/low_ids/mean"] for r in log[-5:])
    assert last > first + 0.15, (first, last)
    assert log[0]["kl"] == 0.0 and min(r["kl"] for r in log[-5:]) > 0.1  # it moved away from the frozen reference
    plots = {Path(p).name for p in result.plots}
    assert {"training_reward.png", "training_rewards_low_ids_mean.png", "training_rewards_length_mean.png",
            "training_reward_group_std.png", "training_kl.png"} <= plots
    assert (Path(result.output_dir) / "model.safetensors").is_file()


def test_reward_fn_from_python_and_the_group_spread(grpo):
    """tk.train(reward_fn=...) adds a Python reward; a reward that is the same for every answer of a group
    gives no spread within groups, so nothing to learn from."""
    def constant_per_prompt(prompts, completions, **kwargs):
        return [float(len(p[-1]["content"]) % 7) for p in prompts]

    result = tk.train(grpo, reward_funcs="", reward_fn=constant_per_prompt, max_steps=2)
    log = [r for r in tk.read_log(result.log_path) if "reward" in r]
    assert all(r["reward_group_std"] == 0.0 for r in log)
    assert all("rewards/constant_per_prompt/mean" in r for r in log)
    # LoRA (the default): the reference is the model with its adapter disabled, not a copy
    assert result.trainer.ref_model is None and list(result.model.peft_config) == ["default"]
    assert (Path(result.output_dir) / "adapter_model.safetensors").is_file()


def test_the_final_evaluation_samples_num_generations_eval_answers_per_held_out_prompt(grpo, monkeypatch):
    """num_generations_eval: 1 (trl's key) samples one answer per held-out prompt at the end of training, and
    the eval batch then need not be a multiple of num_generations."""
    from trl import GRPOTrainer

    sampled = []
    original = GRPOTrainer._generate

    def counting(self, prompts, *args, **kwargs):
        if not self.model.training:
            sampled.append(len(prompts))
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_generate", counting)
    result = tk.train(grpo, max_steps=1, val_size=6, num_generations_eval=1, per_device_eval_batch_size=3)
    assert sum(sampled) == 6  # one answer to each of the 6 held-out problems (4 each without the key)
    assert "eval_rewards/accuracy/mean" in result.metrics


def test_an_rm_output_is_a_reward_through_the_cli(tiny, tmp_path):
    rm = {**tiny, "stage": "rm", "dataset": "dpo_en_demo", "max_samples": 16, "max_steps": 2,
          "output_dir": str(tmp_path / "rm")}
    tk.train(rm)
    config = tmp_path / "grpo.yaml"
    config.write_text(json.dumps({**tiny, "stage": "grpo", "dataset": "math_demo", "max_samples": 16,
                                  "reward_funcs": "format", "reward_model": str(tmp_path / "rm"),
                                  "reward_weights": "1,0.5", "num_generations": 2, "per_device_train_batch_size": 4,
                                  "max_new_tokens": 8, "cutoff_len": 256, "max_steps": 3,
                                  "output_dir": str(tmp_path / "grpo")}))
    done = run_cli("train", config)
    assert done.returncode == 0, done.stderr[-2000:]
    log = [r for r in tk.read_log(tmp_path / "grpo") if "reward" in r]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(isinstance(r["rewards/reward_model/mean"], float) for r in log)
    assert len({round(r["rewards/reward_model/mean"], 6) for r in log}) > 1  # the rm scores what was sampled


# --- the config's checks (the bad-input catalogue runs them through the CLI too) ------------------------


@pytest.mark.parametrize("keys,words", [
    ({"reward_funcs": "acuracy"}, ["reward_funcs", "'acuracy'", "did you mean 'accuracy'", "module:function"]),
    ({"num_generations": 3}, ["num_generations=3", "per_device_train_batch_size", "8", "multiple"]),
    ({"num_generations": 1}, ["num_generations=1", "at least 2"]),
    ({"val_size": 8, "per_device_eval_batch_size": 6}, ["per_device_eval_batch_size=6", "num_generations=4"]),
    ({"val_size": 8, "num_generations_eval": 4, "per_device_eval_batch_size": 6},
     ["per_device_eval_batch_size=6", "num_generations_eval=4"]),
    ({"num_generations_eval": 0}, ["num_generations_eval=0", "at least 1"]),
    ({"reward_weights": "1,2,3"}, ["reward_weights", "3 numbers", "2 rewards"]),
    ({"reward_weights": "1,heavy"}, ["reward_weights", "'heavy'", "number"]),
    ({"max_new_tokens": 256}, ["max_new_tokens=256", "cutoff_len=256"]),
])
def test_grpo_config_errors_name_the_key(grpo, keys, words):
    with pytest.raises(ConfigError) as err:
        tk.train({**grpo, **keys})
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_a_reward_function_that_does_not_import(grpo):
    with pytest.raises(ConfigError, match=r"reward_funcs='no_such_module:score' cannot be imported .*module:function"):
        tk.train({**grpo, "reward_funcs": "accuracy,no_such_module:score"})
    sys.modules.pop("no_such_module", None)
