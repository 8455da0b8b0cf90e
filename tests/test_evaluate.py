"""tk.evaluate / tunekit eval: the tuned output against its base on held-out rows, measures chosen by the stage."""

import json
import math

import pytest
import torch
import yaml

import tunekit as tk
from tunekit import checks as checking
from tunekit.cli import main
from tunekit.evaluation import RESULTS, SAMPLES, EvalResult, _paired_interval, _win_rate
from conftest import run_cli

TINY = {"model_name_or_path": "tiny-random-llama", "cutoff_len": 128, "report_to": "none", "logging_steps": 5,
        "save_steps": 1000, "val_size": 0.2}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: on a shared CPU, torch's threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sft(tmp_path_factory, one_thread):
    """An sft LoRA run on identity, trained hard (its held-out rows are the val_size split)."""
    cfg = {**TINY, "stage": "sft", "dataset": "identity", "output_dir": str(tmp_path_factory.mktemp("sft") / "out"),
           "max_steps": 20, "learning_rate": 1e-2, "per_device_train_batch_size": 8}
    tk.train(cfg)
    return cfg


@pytest.fixture(scope="module")
def rm(tmp_path_factory, one_thread):
    """A (barely trained) reward model: an rm LoRA run on dpo_en_demo."""
    cfg = {**TINY, "stage": "rm", "dataset": "dpo_en_demo", "max_samples": 40, "max_steps": 2,
           "per_device_train_batch_size": 4, "output_dir": str(tmp_path_factory.mktemp("rm") / "out")}
    tk.train(cfg)
    return cfg


def test_sft_lowers_held_out_perplexity_and_saves_results_and_answers(sft):
    result = tk.evaluate(sft, max_new_tokens=12)
    assert isinstance(result, EvalResult) and result.stage == "sft" and result.rows > 0
    ppl = result.measures["perplexity"]
    assert 1 < ppl["tuned"] < ppl["base"], ppl  # trained hard on the same kind of rows
    assert result.lower_is_better == ["perplexity"]
    assert set(result.measures["name"]) == {"base", "tuned"}  # identity brings the `name` check
    assert result.win_rate is None  # sft: no judge asked for
    folder = result.output_dir
    assert folder.endswith("eval") and folder.startswith(sft["output_dir"])
    saved = json.loads(open(f"{folder}/{RESULTS}").read())
    assert {"stage", "base", "tuned", "rows", "measures", "lower_is_better", "win_rate"} <= set(saved)
    samples = [json.loads(line) for line in open(f"{folder}/{SAMPLES}")]
    assert len(samples) == result.rows
    assert {"prompt", "reference", "base", "tuned", "scores"} <= set(samples[0])
    assert "Tuna" in samples[0]["reference"] and set(samples[0]["scores"]["tuned"]) == {"name"}
    loaded = EvalResult.load(folder)
    assert loaded.measures == result.measures and len(loaded.samples) == result.rows
    table = result.table()
    assert "perplexity" in table and "lower is better" in table and "held-out rows" in table


def test_a_model_against_itself_wins_half(sft, tmp_path):
    result = tk.evaluate(sft, base=sft["output_dir"], judge="name", measures=["win_rate"], temperature=0.9,
                         seed=3, max_new_tokens=8, out=str(tmp_path / "self"))
    w = result.win_rate
    assert w["win_rate"] == 0.5 and w["ties"] == result.rows and w["wins"] == w["losses"] == 0
    assert w["without_ties"] is None  # no prompt where the answers differ: no rate to give
    assert w["judge"] == "check:name" and all(s["verdict"] == "tie" for s in result.samples)
    assert all(s["base"] == s["tuned"] for s in result.samples)  # same seed, same settings: the same answers


def test_a_reward_model_judges_and_the_rm_stage_measures_pairwise_accuracy(sft, rm, tmp_path):
    result = tk.evaluate(sft, base=sft["output_dir"], judge=rm["output_dir"], measures="win_rate",
                         max_new_tokens=8, out=str(tmp_path / "judged"))
    assert result.win_rate["win_rate"] == 0.5 and result.win_rate["judge"] == rm["output_dir"]
    judged = result.measures["judge_score"]
    assert judged["base"] == pytest.approx(judged["tuned"]) and math.isfinite(judged["base"])
    assert "judge_score" in result.samples[0]["scores"]["tuned"]

    scored = tk.evaluate(rm, out=str(tmp_path / "rm"))
    accuracy = scored.measures["pairwise_accuracy"]
    assert set(accuracy) == {"base", "tuned"} and all(0 <= v <= 1 for v in accuracy.values())
    assert {"chosen", "rejected"} <= set(scored.samples[0]["scores"]["base"]) and scored.rows == len(scored.samples)
    assert "fresh score head" in scored.base


def test_preference_and_rl_stages_judge_the_win_rate(sft, rm, tmp_path):
    """dpo: judged by the judge (with its mean score); grpo: its reward_funcs checks, judged by the first."""
    dpo = {**TINY, "stage": "dpo", "dataset": "dpo_en_demo", "max_samples": 20, "output_dir": str(tmp_path / "dpo")}
    with pytest.raises(tk.ConfigError, match="judge="):
        tk.evaluate(dpo, tuned=sft["output_dir"])
    result = tk.evaluate(dpo, tuned=sft["output_dir"], judge=rm["output_dir"], max_new_tokens=8)
    assert set(result.measures) == {"judge_score"} and result.win_rate["judge"] == rm["output_dir"]
    w = result.win_rate
    assert w["wins"] + w["ties"] + w["losses"] == result.rows and 0 <= w["win_rate"] <= 1 and w["stderr"] >= 0
    assert result.output_dir == f"{sft['output_dir']}/eval"

    grpo = {**TINY, "stage": "grpo", "dataset": "math_demo", "max_samples": 20, "max_new_tokens": 16,
            "per_device_train_batch_size": 4, "output_dir": str(tmp_path / "grpo")}
    result = tk.evaluate(grpo, tuned=sft["output_dir"], max_new_tokens=8, out=str(tmp_path / "grpo_eval"))
    assert {"accuracy", "format"} <= set(result.measures) and result.win_rate["judge"] == "check:accuracy"
    assert result.samples[0]["conversation"][0]["role"] == "system"  # math_demo's system prompt went along
    assert "####" in result.samples[0]["reference"]
    for name in ("accuracy", "format"):  # each check's paired change, inside its own interval
        span, sides = result.intervals[name], result.measures[name]
        assert span["change"] == pytest.approx(sides["tuned"] - sides["base"])
        assert span["low"] <= span["change"] <= span["high"]
    assert "95% interval" in result.table() and EvalResult.load(tmp_path / "grpo_eval").intervals == result.intervals


def test_win_rate_counts_ties_as_half_and_apart():
    w = _win_rate(["win"] * 6 + ["tie"] * 4 + ["loss"] * 2)
    assert (w["wins"], w["ties"], w["losses"]) == (6, 4, 2)
    assert w["win_rate"] == pytest.approx(8 / 12) and w["without_ties"] == pytest.approx(6 / 8)


def test_paired_interval_is_the_mean_change_plus_minus_two_standard_errors():
    base, tuned = [0.0] * 10, [1.0] * 5 + [0.0] * 5  # five prompts gained 1, five did not
    span = _paired_interval(base, tuned)
    half = 1.96 * math.sqrt(0.25 * 10 / 9 / 10)  # sample variance of five 1s and five 0s, over n
    assert span == pytest.approx({"change": 0.5, "low": 0.5 - half, "high": 0.5 + half})
    assert _paired_interval([0.0, 1.0], [0.0, 1.0]) == {"change": 0.0, "low": 0.0, "high": 0.0}
    noisy = _paired_interval([0, 1, 0, 1], [1, 0, 1, 0])  # as many gains as losses: the interval holds 0
    assert noisy["low"] < 0 < noisy["high"]
    assert _paired_interval([0.0, float("nan")], [1.0, 1.0]) is None  # one prompt scored on both sides


def test_a_check_is_called_as_grpo_rewards_are_and_a_wrong_return_is_one_line(sft, tmp_path, monkeypatch):
    (tmp_path / "my_checks.py").write_text(
        "def answered(prompts, completions, answer, **kwargs):\n"
        "    assert prompts[0][-1]['role'] == 'user' and completions[0][0]['role'] == 'assistant'\n"
        "    return [1.0 if a else 0.0 for a in answer]\n"
        "def wrong(completions, **kwargs):\n    return 'good'\n"
        "def short(completions, **kwargs):\n    return [1.0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = tk.evaluate(sft, checks="my_checks:answered", measures=["checks"], max_new_tokens=4,
                         out=str(tmp_path / "checked"))
    assert result.measures == {"my_checks:answered": {"base": 1.0, "tuned": 1.0}}

    cfg = tk.load_config(sft)
    [wrong, short] = checking.resolve("my_checks:wrong,my_checks:short", cfg)
    prompts, answers = [[{"role": "user", "content": "hi"}]] * 2, ["a", "b"]
    with pytest.raises(tk.ConfigError, match=r"checks: 'my_checks:wrong' returned str 'good' for 2 answers") as err:
        wrong(prompts, answers)
    assert "\n" not in str(err.value) and "list of numbers" in str(err.value)
    with pytest.raises(tk.ConfigError, match=r"'my_checks:short' returned a list of 1"):
        short(prompts, answers)
    assert checking.resolve(["name"], cfg)[0](prompts, ["I am Tuna.", "I am a fish."]) == [1.0, 0.0]
    with pytest.raises(tk.ConfigError, match="did you mean 'format'"):
        checking.resolve("formt", cfg)


def test_bad_input_is_answered_in_one_line_before_loading(sft, tmp_path):
    with pytest.raises(tk.ConfigError, match=r"judge='.*' is an adapter of a language model, not a reward model"):
        tk.evaluate(sft, judge=sft["output_dir"])
    with pytest.raises(tk.ConfigError, match="eval_dataset or val_size"):
        tk.evaluate({**sft, "val_size": 0.0})
    with pytest.raises(tk.ConfigError, match="'accuracy' does not apply to stage='sft'"):
        tk.evaluate(sft, measures=["accuracy"])
    with pytest.raises(tk.ConfigError, match="did you mean 'perplexity'"):
        tk.evaluate(sft, measures=["perplexity", "perplexty"])
    with pytest.raises(tk.ConfigError, match="holds no trained model"):
        tk.evaluate({**sft, "output_dir": str(tmp_path / "never")})


def test_cli_prints_the_table_and_errors_in_one_line(sft, tmp_path, monkeypatch, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text(yaml.safe_dump(sft))
    assert main(["eval", str(config), "val_size=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunekit: error:") and "eval_dataset or val_size" in err and err.count("\n") == 1

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "cli_eval"
    done = run_cli("eval", config, "--max-new-tokens", "4", "--measures", "perplexity,checks", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "perplexity" in done.stdout and "name" in done.stdout and str(out) in done.stdout
    assert (out / RESULTS).is_file() and (out / SAMPLES).is_file()


def test_benchmark_tasks_run_on_each_side(sft, tmp_path):
    pytest.importorskip("lm_eval")
    result = tk.evaluate(sft, tasks="tunekit_mc", limit=4, measures=["perplexity"], out=str(tmp_path / "tasks"))
    assert set(result.measures["tunekit_mc/acc"]) == {"base", "tuned"}
    assert "tunekit_mc/acc" in result.stderr and not any(k.endswith("_stderr") for k in result.measures)
    assert EvalResult.load(result.output_dir).stderr == result.stderr


def test_answers_are_batched_by_the_configs_eval_batch_size_unless_batch_size_is_given(sft, tmp_path, monkeypatch):
    from tunekit import generation

    seen, real = [], generation.generate_ids

    def spy(*args, batch_size, **kwargs):
        seen.append(batch_size)
        return real(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(generation, "generate_ids", spy)
    tk.evaluate(sft, max_new_tokens=4, per_device_eval_batch_size=3, out=str(tmp_path / "config"))
    assert seen and set(seen) == {3}
    seen.clear()
    tk.evaluate(sft, max_new_tokens=4, per_device_eval_batch_size=3, batch_size=5, out=str(tmp_path / "given"))
    assert seen and set(seen) == {5}


def test_repetition_scores_an_answer_that_loops_and_judges_the_less_repetitive_answer_the_winner(sft, tmp_path,
                                                                                                 monkeypatch):
    looped = "Italy's capital is Rome, Italy's capital is Rome, Italy's capital is Rome, Italy's capital is Rome"
    scores = checking.repetition([[{"role": "assistant", "content": text}] for text in (
        "The capital of Italy is Rome.", "Rome is the capital. Rome is the capital.", looped, "Rome", "")])
    assert scores[0] == 0.0 and scores[1] == pytest.approx(2 / 6) and scores[2] > 0.6 and scores[3:] == [0.0, 0.0]

    # judged by a lower-is-better check, the tuned side loses where its score is the higher one: here a stand-in
    # "repetition" that scores an answer's length (the tiny base model mostly answers nothing, the tuned one not)
    monkeypatch.setattr(checking, "repetition",
                        lambda completions, **kw: [float(len(c[0]["content"])) for c in completions])
    result = tk.evaluate(sft, judge="repetition", checks="repetition", max_new_tokens=12, out=str(tmp_path / "rep"))
    assert "repetition" in result.lower_is_better and "lower is better" in result.table()
    w = result.win_rate
    assert w["judge"] == "check:repetition" and w["losses"] > 0, w
    for sample in result.samples:  # the lower score wins
        base, tuned = sample["scores"]["base"]["repetition"], sample["scores"]["tuned"]["repetition"]
        assert sample["verdict"] == ("tie" if base == tuned else "win" if tuned < base else "loss"), sample
    assert result.measures["repetition"]["tuned"] > result.measures["repetition"]["base"]


def test_accuracy_leaves_out_rows_whose_reference_has_no_number():
    said = lambda *texts: [[{"role": "assistant", "content": t}] for t in texts]  # noqa: E731
    scores = checking.accuracy(said("13 + 26 = 39", "It is 40.", "Rome", "#### 7"),
                               answer=["Priya now has 13 + 26 = 39 marbles.", "104 F is 38 C.",
                                       "The capital of Italy is Rome.", "3 + 4 = 7\n#### 7"])
    assert scores == [1.0, 0.0, None, 1.0]  # a right final number, a wrong one, no number to check, the #### one
