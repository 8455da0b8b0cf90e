"""do_predict and evaluation without training, as LLaMA-Factory's configs ask for them."""

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

import tunekit as tk
from tunekit.metrics import similarity

# LLaMA-Factory's examples/extras/nlg_eval/llama3_lora_predict.yaml, with the model swapped, the adapter left
# out (there is none to start from here), max_samples small and short answers.
PREDICT_YAML = """\
### model
model_name_or_path: tiny-random-llama
trust_remote_code: true

### method
stage: sft
do_predict: true
finetuning_type: lora

### dataset
eval_dataset: identity,alpaca_en_demo
template: llama3
cutoff_len: 2048
max_samples: 3
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: {output_dir}
overwrite_output_dir: true
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### eval
per_device_eval_batch_size: 1
predict_with_generate: true
max_new_tokens: 8
ddp_timeout: 180000000
"""

METRIC_KEYS = {"predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"}


def test_the_llamafactory_predict_yaml_predicts_without_training(tmp_path):
    out = tmp_path / "predict"
    config = tmp_path / "llama3_lora_predict.yaml"
    config.write_text(PREDICT_YAML.format(output_dir=out))
    proc = run_cli("train", config, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "predict_results.json").read_text())
    assert METRIC_KEYS <= set(results)
    assert all(0 <= results[k] <= 100 for k in METRIC_KEYS)
    lines = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 6  # max_samples rows of each of the two sets
    assert all(set(line) == {"prompt", "predict", "label"} for line in lines)
    assert "<|im_start|>user" in lines[0]["prompt"] and lines[0]["label"]  # the prompt as the model saw it
    assert json.loads((out / "all_results.json").read_text())["predict_bleu-4"] == results["predict_bleu-4"]
    # nothing trained: no adapter, no log, no checkpoint
    assert not list(out.glob("adapter_*")) and not (out / "trainer_log.jsonl").exists()


def _predict_with(monkeypatch, tmp_path, answer_for) -> tuple[dict, list[dict]]:
    """Predict on held-out identity rows with generation replaced by ``answer_for(label) -> text``."""
    import tunekit.generation

    labels_by_prompt = {}

    def fake(model, tokenizer, prompts, **options):
        return [tokenizer(answer_for(labels_by_prompt[tokenizer.decode(p)]), add_special_tokens=False)["input_ids"]
                for p in prompts]

    from tunekit.data import load_rows, prompt_ids, split_answer
    from tunekit.models import load_tokenizer

    cfg = tk.load_config({"model_name_or_path": "tiny-random-llama", "eval_dataset": "identity", "max_samples": 8,
                          "do_predict": True, "predict_with_generate": True, "output_dir": str(tmp_path / "out")})
    tokenizer = load_tokenizer(cfg)
    for messages in load_rows(cfg, "chat")["eval"]["messages"]:
        prompt, answer = split_answer(messages)
        labels_by_prompt[tokenizer.decode(prompt_ids(tokenizer, prompt))] = answer
    monkeypatch.setattr(tunekit.generation, "generate_ids", fake)
    result = tk.train(cfg)
    lines = [json.loads(line) for line in (tmp_path / "out" / "generated_predictions.jsonl").read_text().splitlines()]
    return result.metrics, lines


def test_a_model_that_copies_the_labels_scores_100(monkeypatch, tmp_path):
    metrics, lines = _predict_with(monkeypatch, tmp_path, lambda label: label)
    assert all(line["predict"] == line["label"] for line in lines)
    assert {k: metrics[k] for k in METRIC_KEYS} == dict.fromkeys(METRIC_KEYS, 100.0)


def test_a_model_that_answers_nonsense_scores_near_0(monkeypatch, tmp_path):
    metrics, _ = _predict_with(monkeypatch, tmp_path, lambda label: "zq xv kk")
    assert all(metrics[k] < 2 for k in METRIC_KEYS), metrics


def test_similarity_follows_llamafactory_definitions():
    # BLEU-4 over characters, ROUGE over words; a half-right answer lands between 0 and 100
    scores = similarity(["The sky is blue today."], ["The sky is blue."])
    assert 30 < scores["bleu-4"] < 100 and 50 < scores["rouge-1"] < 100
    assert similarity([""], ["anything"]) == dict.fromkeys(("bleu-4", "rouge-1", "rouge-2", "rouge-l"), 0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny runs of each stage that evaluates (one step; sft longer, so its adapter differs from the base)."""
    root = tmp_path_factory.mktemp("runs")
    common = {"model_name_or_path": "tiny-random-llama", "cutoff_len": 128, "per_device_train_batch_size": 4,
              "logging_steps": 1, "save_steps": 1000, "learning_rate": 1e-3, "report_to": "none", "val_size": 8,
              "max_steps": 1}
    configs = {"pt": {"dataset": "c4_demo"}, "sft": {"dataset": "identity", "max_steps": 6},
               "rm": {"dataset": "dpo_en_demo"}, "dpo": {"dataset": "dpo_en_demo"}, "kto": {"dataset": "kto_en_demo"},
               "grpo": {"dataset": "math_demo", "reward_funcs": "accuracy,format", "max_new_tokens": 8}}
    runs = {}
    for stage in ("pt", "sft", "rm", "dpo", "kto", "grpo"):
        cfg = common | configs[stage] | {"stage": stage, "output_dir": str(root / stage)}
        runs[stage] = (cfg, tk.train(cfg).metrics)
    rm_cfg = runs["rm"][0]
    ppo = common | {"stage": "ppo", "dataset": "identity", "reward_model": rm_cfg["output_dir"], "max_new_tokens": 8,
                    "output_dir": str(root / "ppo")}
    runs["ppo"] = (ppo, tk.train(ppo).metrics)
    return runs


EVAL_KEYS = {"pt": ["eval_loss", "perplexity"], "sft": ["eval_loss", "perplexity"], "rm": ["eval_accuracy"],
             "dpo": ["eval_rewards/accuracies", "eval_rewards/margins"], "kto": ["eval_rewards/margins", "eval_kl"],
             "grpo": ["eval_reward", "eval_kl"], "ppo": ["eval_reward", "eval_kl", "eval_kl_k3"]}


@pytest.mark.parametrize("stage", list(EVAL_KEYS))
def test_evaluation_without_training_for_every_stage(stage, trained, tmp_path):
    cfg, _ = trained[stage]
    trained_dir = Path(cfg["output_dir"])
    before = {p.name: p.stat().st_mtime_ns for p in trained_dir.iterdir()}
    # written into the trained folder itself, as users do; overwrite_output_dir must not remove the adapter
    result = tk.train(cfg | {"do_train": False, "do_eval": True, "adapter_name_or_path": str(trained_dir),
                             "overwrite_output_dir": True})
    results = json.loads((trained_dir / "eval_results.json").read_text())
    for key in EVAL_KEYS[stage]:
        assert isinstance(results[key], float), (key, results)
    assert json.loads((trained_dir / "all_results.json").read_text())[EVAL_KEYS[stage][0]] == results[EVAL_KEYS[stage][0]]
    assert result.metrics[EVAL_KEYS[stage][0]] == results[EVAL_KEYS[stage][0]]
    after = {p.name: p.stat().st_mtime_ns for p in trained_dir.iterdir()}
    untouched = {name for name in before if name not in ("all_results.json", "eval_results.json")}
    assert {name: after.get(name) for name in untouched} == {name: before[name] for name in untouched}


def test_evaluating_the_trained_adapter_gives_its_final_held_out_loss(trained, tmp_path):
    cfg, metrics = trained["sft"]
    result = tk.train(cfg | {"do_train": False, "do_eval": True, "adapter_name_or_path": cfg["output_dir"],
                             "output_dir": str(tmp_path / "eval")})
    assert result.metrics["eval_loss"] == pytest.approx(metrics["eval_loss"], rel=1e-4)
    base = tk.train(cfg | {"do_train": False, "do_eval": True, "output_dir": str(tmp_path / "base")})
    assert base.metrics["eval_loss"] > result.metrics["eval_loss"]  # six steps on identity lowered it


def test_reward_model_predict_scores_every_chosen_and_rejected_answer(trained, tmp_path):
    cfg, _ = trained["rm"]
    out = tmp_path / "rm_predict"
    result = tk.train(cfg | {"do_train": False, "do_predict": True, "adapter_name_or_path": cfg["output_dir"],
                             "output_dir": str(out)})
    lines = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all(set(line) == {"chosen", "rejected"} for line in lines)
    accuracy = sum(line["chosen"] > line["rejected"] for line in lines) / len(lines)
    assert result.metrics["predict_accuracy"] == pytest.approx(accuracy, abs=1 / 8)  # scores are rounded in the file
    assert "predict_accuracy" in json.loads((out / "predict_results.json").read_text())


def test_a_config_that_only_predicts_or_evaluates_does_not_train_unless_it_says_so():
    assert not tk.load_config({"do_predict": True, "predict_with_generate": True, "eval_dataset": "identity"}).do_train
    assert not tk.load_config({"do_eval": True, "val_size": 0.1, "dataset": "identity"}).do_train
    assert tk.load_config({"do_train": True, "do_eval": True, "val_size": 0.1, "dataset": "identity"}).do_train
    assert tk.load_config({"dataset": "identity"}).do_train
