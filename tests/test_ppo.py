"""PPO: the math against hand-computed values, learning a rule, and the rm -> ppo chain on the CLI."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

import tunekit as tk
from conftest import run_cli, write_dataset
from tunekit.stages.ppo_math import AdaptiveKL, gae, kl_k3, kl_penalised_rewards, policy_loss, value_loss, whiten


def test_whiten_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # mean 2, unbiased variance 1
    assert torch.allclose(whiten(x, mask), torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-4)
    assert torch.allclose(whiten(x, mask, shift_mean=False), torch.tensor([[1.0, 2.0, 3.0, 0.0]]), atol=1e-4)


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[0.5, 0.5, 0.5]])) and torch.allclose(ret, torch.ones(1, 3))
    adv, _ = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # t2: 1 - 0.5 = 0.5;  t1: 0.9*0.5 - 0.5 + 0.45*0.5 = 0.175;  t0: -0.05 + 0.45*0.175 = 0.02875
    assert torch.allclose(adv, torch.tensor([[0.02875, 0.175, 0.5]]), atol=1e-6)
    # padding (mask 0) neither adds reward nor value
    adv, ret = gae(torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.5, 0.5, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]]),
                   gamma=0.9, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[0.175, 0.5, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.675, 1.0, 0.0]]), atol=1e-6)


@pytest.mark.parametrize("ratio,advantage,zero", [
    (1.5, 1.0, True), (0.5, -1.0, True),     # beyond the clip in the direction the advantage pulls: no gradient
    (1.5, -1.0, False), (0.5, 1.0, False),   # beyond it in the other direction: the unclipped term acts
    (1.1, 1.0, False),                       # inside the clip range
])
def test_clipped_objective_has_no_gradient_outside_the_clip_range(ratio, advantage, zero):
    logprobs = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, clipfrac = policy_loss(logprobs, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1), clip=0.2)
    loss.backward()
    assert (logprobs.grad.abs().item() == 0.0) is zero
    assert clipfrac.item() == (1.0 if zero else 0.0)


def test_value_loss_takes_the_clipped_error_when_it_is_worse():
    old, returns = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    # moving to 2.0 overshoots: plain error 1, clipped (0.2) error 0.64 -> the plain one, 0.5 * 1
    assert value_loss(torch.tensor([[2.0]]), old, returns, torch.ones(1, 1), 0.2).item() == pytest.approx(0.5)
    # moving to 0.9: plain error 0.01, clipped error 0.64 -> the clipped one, 0.5 * 0.64
    assert value_loss(torch.tensor([[0.9]]), old, returns, torch.ones(1, 1), 0.2).item() == pytest.approx(0.32)


def test_kl_penalty_is_zero_when_policy_equals_reference():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = kl_penalised_rewards(torch.tensor([2.0, -1.0]), logprobs, logprobs.clone(), mask, kl_coef=0.2)
    assert torch.equal(kl, torch.zeros_like(kl))
    assert torch.equal(rewards, torch.tensor([[0.0, 0.0, 2.0], [0.0, -1.0, 0.0]]))  # the score on the last token
    rewards, _ = kl_penalised_rewards(torch.tensor([0.0, 0.0]), logprobs, logprobs - 1.0, mask, kl_coef=0.2)
    assert torch.allclose(rewards, -0.2 * mask)


def test_k3_kl_is_never_negative_and_estimates_the_same_kl_as_the_raw_difference():
    """Tokens drawn from pi: the mean of k1 (log pi - log pi_ref) and of k3 both approach KL(pi || pi_ref),
    but single k1 terms go negative and k3 terms do not; k3 is 0 exactly where pi = pi_ref, and masked."""
    gen = torch.Generator().manual_seed(0)
    pi = torch.softmax(torch.randn(6, generator=gen), 0)
    ref = torch.softmax(torch.randn(6, generator=gen), 0)
    exact = (pi * (pi.log() - ref.log())).sum()
    tokens = torch.multinomial(pi, 200_000, replacement=True, generator=gen).view(1, -1)
    logprobs, ref_logprobs, mask = pi.log()[tokens], ref.log()[tokens], torch.ones(tokens.shape)
    k1 = logprobs - ref_logprobs
    k3 = kl_k3(logprobs, ref_logprobs, mask)
    assert (k1 < 0).any() and (k3 >= 0).all()
    assert k1.mean().item() == pytest.approx(exact.item(), rel=0.05)
    assert k3.mean().item() == pytest.approx(exact.item(), rel=0.05)
    assert k3.var() < k1.var()  # here, as usually while pi is near pi_ref
    same = torch.tensor([[-1.0, -2.0, -0.5]])
    assert torch.equal(kl_k3(same, same.clone(), torch.ones(1, 3)), torch.zeros(1, 3))
    assert kl_k3(same, same - 3.0, torch.tensor([[1.0, 1.0, 0.0]]))[0, 2] == 0.0


def test_adaptive_kl_moves_towards_the_target():
    ctl = AdaptiveKL(0.2, target=6.0, horizon=100)
    ctl.update(12.0, n_samples=10)
    assert ctl.value == pytest.approx(0.2 * 1.02)  # error clipped to +0.2, times 10/100
    ctl.update(0.0, n_samples=10)
    assert ctl.value == pytest.approx(0.2 * 1.02 * 0.98)


@pytest.fixture
def yes_no(tmp_path):
    """Every question answered "yes." once and "no." once: an SFT model says each half of the time."""
    folder = tmp_path / "data"
    write_dataset(folder, "yn", [{"instruction": f"Question number {i}: what do you say?", "input": "", "output": a}
                                 for i in range(32) for a in ("yes.", "no.")], {})
    return str(folder)


def says_yes(prompts, responses):
    return [1.0 if r.strip().lower().startswith("yes") else 0.0 for r in responses]


def test_ppo_learns_a_rule_with_bounded_kl(tiny, yes_no, tmp_path):
    sft = tk.train({**tiny, "dataset": "yn", "dataset_dir": yes_no, "finetuning_type": "full", "max_steps": 150,
                    "learning_rate": 3e-3, "per_device_train_batch_size": 8, "cutoff_len": 64,
                    "output_dir": str(tmp_path / "sft"), "logging_steps": 50})
    result = tk.train({**tiny, "model_name_or_path": sft.output_dir, "stage": "ppo", "reward_model_type": "function",
                       "dataset": "yn", "dataset_dir": yes_no, "finetuning_type": "full", "max_steps": 20,
                       "per_device_train_batch_size": 32, "max_new_tokens": 4, "cutoff_len": 64,
                       "learning_rate": 1e-3, "lr_scheduler_type": "constant", "ppo_init_kl_coef": 0.05,
                       "temperature": 1.0, "top_p": 1.0, "top_k": 0, "logging_steps": 1, "plot_loss": True},
                      reward_fn=says_yes)
    log = [r for r in tk.read_log(result.log_path) if "reward" in r]
    rewards = [r["reward"] for r in log]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-5:]) / 5
    assert 0.2 < first < 0.8 and last > first + 0.25, rewards
    kls = [r["kl"] for r in log]
    assert sum(kls) / len(kls) < 4.0 and max(kls) < 30.0, kls  # a spike on an odd sample, but no drift
    assert all(r["kl_k3"] >= 0 for r in log)
    for key in ("reward_norm", "kl", "kl_k3", "entropy", "policy_loss", "value_loss", "clip_fraction", "approx_kl",
                "response_length", "loss"):
        assert key in log[-1], key
    assert {Path(p).name for p in result.plots} >= {"training_loss.png", "training_reward.png"}


def test_ppo_resumes_exactly_from_a_checkpoint(tiny, tmp_path):
    run = {**tiny, "stage": "ppo", "reward_model_type": "function", "max_steps": 4, "save_steps": 2,
           "max_new_tokens": 6, "per_device_train_batch_size": 2}
    whole = tk.train({**run, "output_dir": str(tmp_path / "whole")}, reward_fn=lambda p, r: [len(x) / 10 for x in r])
    tk.train(run, reward_fn=lambda p, r: [len(x) / 10 for x in r])
    out = Path(tiny["output_dir"])
    assert (out / "checkpoint-2" / "value_head.safetensors").is_file()
    shutil.rmtree(out / "checkpoint-4")  # as if the run had died after step 2
    resumed = tk.train({**run, "resume_from_checkpoint": True}, reward_fn=lambda p, r: [len(x) / 10 for x in r])
    assert resumed.trainer.state.global_step == 4
    mine = [(r["step"], r["reward"], r["loss"]) for r in tk.read_log(out) if "reward" in r]
    theirs = [(r["step"], r["reward"], r["loss"]) for r in tk.read_log(whole.log_path) if "reward" in r]
    assert [m[0] for m in mine] == [1, 2, 3, 4]
    flat = lambda rows: [x for row in rows for x in row]  # noqa: E731
    assert flat(mine) == pytest.approx(flat(theirs), rel=1e-4)


def test_reward_function_from_yaml_module(tiny, tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text("def short(prompts, responses):\n    return [-len(r) for r in responses]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    result = tk.train({**tiny, "stage": "ppo", "reward_model_type": "function", "reward_model": "my_rewards:short",
                       "max_steps": 1, "max_new_tokens": 4})
    assert tk.read_log(result.log_path)[0]["reward"] <= 0
    with pytest.raises(tk.ConfigError, match="my_rewards:missing"):
        tk.train({**tiny, "stage": "ppo", "reward_model_type": "function", "reward_model": "my_rewards:missing",
                  "max_steps": 1, "max_new_tokens": 4, "overwrite_output_dir": True})


def test_rm_then_ppo_through_the_cli(tmp_path, tiny):
    rm_cfg, ppo_cfg = tmp_path / "rm.yaml", tmp_path / "ppo.yaml"
    tk.load_config({**tiny, "stage": "rm", "dataset": "dpo_en_demo", "max_samples": 32, "max_steps": 3,
                    "output_dir": str(tmp_path / "reward")}).to_yaml(rm_cfg)
    tk.load_config({**tiny, "stage": "ppo", "dataset": "identity,alpaca_en_demo", "reward_model": str(tmp_path / "reward"),
                    "max_steps": 2, "max_new_tokens": 8, "output_dir": str(tmp_path / "ppo")}).to_yaml(ppo_cfg)
    assert run_cli("train", rm_cfg).returncode == 0
    proc = run_cli("train", ppo_cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [r for r in tk.read_log(tmp_path / "ppo") if "reward" in r]
    assert [r["step"] for r in log] == [1, 2] and all("kl" in r for r in log)
    assert log[0]["kl"] == 0.0 and log[0]["kl_k3"] == 0.0  # a fresh adapter: the policy is still the reference
    assert (tmp_path / "ppo" / "value_head.safetensors").is_file()
    model, tokenizer = tk.load_for_inference("tiny-random-llama", str(tmp_path / "ppo"))
    assert isinstance(tk.generate(model, tokenizer, "Who are you?", max_new_tokens=4), str)
    config = json.loads((tmp_path / "ppo" / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM"


def test_ppo_needs_a_reward(tiny):
    with pytest.raises(tk.ConfigError, match="reward_model"):
        tk.load_config({**tiny, "stage": "ppo", "max_new_tokens": 4})
    with pytest.raises(tk.ConfigError, match="max_new_tokens"):
        tk.load_config({**tiny, "stage": "ppo", "reward_model_type": "function"})
    with pytest.raises(tk.ConfigError, match="not the output_dir of an rm run"):
        tk.train({**tiny, "stage": "ppo", "reward_model": str(Path(tiny["output_dir"]).parent), "max_new_tokens": 4})


def test_running_moments_by_hand():
    from tunekit.stages.ppo_math import RunningMoments

    moments = RunningMoments()
    moments.update(torch.tensor([1.0, 3.0]))
    moments.update(torch.tensor([5.0, 7.0]))
    assert moments.mean == pytest.approx(4.0) and moments.std == pytest.approx(math.sqrt(5.0))  # of 1, 3, 5, 7


def test_buffer_accumulation_score_norm_whitening_and_eval(tiny):
    result = tk.train({**tiny, "stage": "ppo", "reward_model_type": "function", "max_steps": 2, "max_new_tokens": 4,
                       "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "ppo_buffer_size": 2,
                       "ppo_epochs": 3, "ppo_score_norm": True, "ppo_whiten_rewards": True, "val_size": 4},
                      reward_fn=lambda p, r: [float(len(x)) for x in r])
    trainer = result.trainer
    assert trainer.buffer_size == 8  # per-device batch x accumulation x buffer
    assert trainer.lr_scheduler.last_epoch == 2 * 3 * 2  # steps x ppo_epochs x optimizer steps per pass
    log = [r for r in tk.read_log(result.log_path) if "reward" in r]
    assert all(abs(r["reward_norm"]) < abs(r["reward"]) for r in log)  # scores normalised by running moments
    assert "eval_reward" in result.metrics


def test_a_nan_reward_stops_ppo_naming_the_step_and_keeps_the_checkpoint(tiny):
    calls = []

    def breaks_at_step_3(prompts, responses):
        calls.append(1)
        return [float("nan") if len(calls) >= 3 else 0.5] * len(responses)

    config = {**tiny, "stage": "ppo", "reward_model_type": "function", "max_new_tokens": 4, "max_steps": 6,
              "save_steps": 2}
    with pytest.raises(tk.TrainingError, match=r"the loss became nan at step 3 .*checkpoint-2"):
        tk.train(config, reward_fn=breaks_at_step_3)
    out = Path(tiny["output_dir"])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    resumed = tk.train({**config, "resume_from_checkpoint": True, "max_steps": 3}, reward_fn=says_yes)
    assert resumed.trainer.state.global_step == 3
