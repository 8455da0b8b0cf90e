"""GRPO's variants (Dr. GRPO, DAPO, GSPO) as keys that reach trl, rloo and on-policy distillation: their keys, their
errors, and each trained from the CLI on the tiny model with its own metrics in the log."""

import json
import statistics
import textwrap
from pathlib import Path

import pytest

import tunekit as tk
from conftest import run_cli
from families import tiny_model
from tunekit.config import GRPO_LOSS_TYPES, ConfigError
from tunekit.run import build, plan


@pytest.fixture
def grpo(tiny):
    return {**tiny, "stage": "grpo", "dataset": "math_demo", "max_samples": 32, "cutoff_len": 256,
            "max_new_tokens": 8, "num_generations": 2, "per_device_train_batch_size": 4, "temperature": 1.0,
            "top_p": 1.0, "top_k": 0, "max_steps": 2}


VARIANTS = {  # the papers' settings, as trl's keys
    "dr_grpo": {"loss_type": "dr_grpo", "scale_rewards": "none"},
    "dapo": {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4},
}


@pytest.mark.parametrize("keys", [
    {"loss_type": "dr_grpo", "importance_sampling_level": "sequence", "scale_rewards": "none", "epsilon": 0.1,
     "epsilon_high": 0.28, "delta": 1.5, "mask_truncated_completions": True, "num_iterations": 2,
     "top_entropy_quantile": 0.2},
    {},  # trl's own defaults, passed as trl has them
], ids=["set", "defaults"])
def test_every_grpo_variant_key_reaches_the_trainer(grpo, keys):
    from trl import GRPOConfig

    args = build(plan({**grpo, **keys})).trainer.args
    expected = {"loss_type": "dapo", "importance_sampling_level": "token", "scale_rewards": "group", "epsilon": 0.2,
                "epsilon_high": None, "delta": None, "mask_truncated_completions": False, "num_iterations": 1,
                "top_entropy_quantile": 1.0} | keys
    defaults = GRPOConfig(output_dir="x", bf16=False, use_cpu=True)
    for key, value in expected.items():
        assert getattr(args, key) == value, key
        if not keys:
            assert getattr(args, key) == getattr(defaults, key), key


def test_rloo_gets_its_clipping_keys_and_pref_beta(grpo):
    args = build(plan({**grpo, "stage": "rloo", "epsilon_high": 0.28, "num_iterations": 2, "pref_beta": 0.02,
                       "mask_truncated_completions": True})).trainer.args
    assert (args.epsilon, args.epsilon_high, args.num_iterations, args.beta, args.mask_truncated_completions) == \
        (0.2, 0.28, 2, 0.02, True)


@pytest.mark.parametrize("keys,words", [
    ({"loss_type": "drgrpo"}, ["loss_type='drgrpo'", *GRPO_LOSS_TYPES, "did you mean 'dr_grpo'"]),
    ({"importance_sampling_level": "seq"}, ["importance_sampling_level='seq'", "token", "sequence"]),
    ({"scale_rewards": "std"}, ["scale_rewards='std'", "group", "batch", "none"]),
    ({"epsilon": -0.2}, ["epsilon=-0.2", "negative"]),
    ({"num_iterations": 0}, ["num_iterations=0", "at least 1"]),
    ({"top_entropy_quantile": 1.5}, ["top_entropy_quantile=1.5", "from 0 to 1"]),
    ({"stage": "rloo", "loss_type": "dr_grpo"}, ["loss_type", "grpo's own key, not rloo's", "stage: grpo"]),
    ({"stage": "rloo", "num_generations": 1}, ["num_generations=1", "at least 2"]),
    ({"stage": "distill"}, ["teacher_model", "stage: distill needs"]),
    ({"stage": "distill", "teacher_model": "tiny-random-llama", "pref_beta": 2}, ["pref_beta=2", "reverse KL"]),
    ({"stage": "distill", "teacher_model": "tiny-random-llama", "lmbda": 1.5}, ["lmbda=1.5", "from 0 to 1"]),
])
def test_variant_rloo_and_distill_errors_are_one_line_and_name_the_key(grpo, keys, words):
    with pytest.raises(ConfigError) as err:
        tk.load_config({**grpo, **keys})
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_scale_rewards_takes_trls_booleans():
    assert tk.load_config(None, stage="grpo", dataset="math_demo", per_device_train_batch_size=4, scale_rewards=False).scale_rewards == "none"
    assert tk.load_config(None, "scale_rewards=true", stage="grpo", dataset="math_demo", per_device_train_batch_size=4).scale_rewards == "group"


def test_distill_defaults_to_the_reverse_kl_unless_the_config_says():
    keys = {"dataset": "math_demo", "teacher_model": "x"}
    assert tk.load_config(None, stage="distill", **keys).pref_beta == 1.0
    assert tk.load_config(None, stage="distill", pref_beta=0.5, **keys).pref_beta == 0.5
    assert tk.load_config(None, stage="grpo", per_device_train_batch_size=4, **keys).pref_beta == 0.1


@pytest.mark.parametrize("name,keys", [*VARIANTS.items(), ("rloo", {"stage": "rloo", "epsilon_high": 0.28})])
def test_each_variant_and_rloo_trains_from_the_cli_and_logs_its_own_metrics(grpo, tmp_path, name, keys):
    config = tmp_path / f"{name}.yaml"
    config.write_text(json.dumps({**grpo, **keys, "reward_funcs": "format,length", "max_steps": 2}))
    done = run_cli("train", config)
    assert done.returncode == 0, done.stderr[-2000:]
    log = [r for r in tk.read_log(grpo["output_dir"]) if "reward" in r]
    assert [r["step"] for r in log] == [1, 2]
    for key in ("reward", "rewards/format/mean", "rewards/length/mean", "reward_group_std", "kl",
                "clip_ratio/region_mean", "completions/mean_length"):
        assert all(isinstance(r.get(key), float) for r in log), (name, key)
    saved = tk.load_config(Path(grpo["output_dir"]) / "training_args.yaml")  # the run's saved config repeats it
    assert {key: getattr(saved, key) for key in keys} == keys


def test_rloo_learns_a_rule(grpo, tmp_path, monkeypatch):
    """As grpo's test: the share of answer tokens from the lower half of the vocabulary, in full fine-tuning (the
    random tiny model's logits are too small for LoRA to move in a test's time)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    rules.joinpath("vocab_rules.py").write_text(textwrap.dedent('''
        def low_ids(completions, completion_ids, **kwargs):
            return [sum(i < 512 for i in ids) / max(len(ids), 1) for ids in completion_ids]
    '''))
    monkeypatch.syspath_prepend(str(rules))
    result = tk.train(grpo, stage="rloo", reward_funcs="vocab_rules:low_ids", max_steps=24, finetuning_type="full",
                      learning_rate=1e-2, lr_scheduler_type="constant", num_generations=8,
                      per_device_train_batch_size=16, pref_beta=0.04)
    log = [r for r in tk.read_log(result.log_path) if "reward" in r]
    first = statistics.mean(r["rewards/low_ids/mean"] for r in log[:5])
    last = statistics.mean(r["rewards/low_ids/mean"] for r in log[-5:])
    assert last > first + 0.15, (first, last)
    assert min(r["kl"] for r in log[-5:]) > 0  # it moved away from the frozen reference


# --- distill ---------------------------------------------------------------------------------------------


@pytest.fixture
def teacher(tiny, tmp_path):
    """A tiny model trained in full on the identity set: its next-token distributions differ from the base's."""
    out = tmp_path / "teacher"
    tk.train({**tiny, "finetuning_type": "full", "learning_rate": 1e-2, "max_steps": 12, "output_dir": str(out)})
    return out


def test_distill_trains_from_the_cli_towards_its_teacher(tiny, teacher, tmp_path):
    config = tmp_path / "distill.yaml"
    out = tmp_path / "student"
    config.write_text(json.dumps({**tiny, "stage": "distill", "teacher_model": str(teacher), "dataset": "identity",
                                  "finetuning_type": "full", "learning_rate": 1e-2, "lr_scheduler_type": "constant",
                                  "max_new_tokens": 12, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                                  "max_steps": 16, "output_dir": str(out)}))
    done = run_cli("train", config)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "plan: about" in done.stdout + done.stderr
    log = [r for r in tk.read_log(out) if "loss" in r and "step" in r]
    assert len(log) == 16 and all(r["on_policy"] == 1.0 for r in log)  # lmbda 1: every step samples
    for key in ("entropy", "completions/mean_length"):
        assert all(isinstance(r.get(key), float) for r in log), key
    first = statistics.mean(r["loss"] for r in log[:4])
    last = statistics.mean(r["loss"] for r in log[-4:])
    assert first > 0 and last < 0.7 * first, (first, last)  # the divergence from the teacher falls


def test_lmbda_is_the_share_of_steps_on_the_students_own_answers(tiny, tmp_path):
    keys = {**tiny, "stage": "distill", "teacher_model": "tiny-random-llama", "dataset": "identity",
            "max_new_tokens": 8, "max_steps": 12}
    shares = {}
    for lmbda in (0.0, 0.5):
        result = tk.train(keys, lmbda=lmbda, output_dir=str(tmp_path / f"l{lmbda}"))
        shares[lmbda] = [r["on_policy"] for r in tk.read_log(result.log_path) if "on_policy" in r]
    assert shares[0.0] == [0.0] * 12  # the data's answers only (off-policy, as SFT on them)
    assert 0 < sum(shares[0.5]) < 12


def test_a_teacher_saved_as_an_adapter_loads_on_its_base(tiny, tmp_path):
    lora = tmp_path / "lora-teacher"
    tk.train({**tiny, "max_steps": 1, "output_dir": str(lora)})
    trainer = build(plan({**tiny, "stage": "distill", "teacher_model": str(lora), "dataset": "identity",
                          "max_new_tokens": 8})).trainer
    assert trainer.teacher_model is not None and not hasattr(trainer.teacher_model, "peft_config")


def test_a_teacher_with_another_vocabulary_is_a_one_line_error(tiny, tmp_path):
    other = tiny_model("qwen3", tmp_path / "qwen3-tiny")
    with pytest.raises(ConfigError) as err:
        build(plan({**tiny, "stage": "distill", "teacher_model": str(other), "dataset": "identity",
                    "max_new_tokens": 8}))
    message = str(err.value)
    assert "\n" not in message and "another vocabulary" in message and "student's tokenizer" in message
