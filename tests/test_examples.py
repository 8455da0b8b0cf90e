"""Every example YAML trains as written, but for the model (the tiny one) and a couple of steps."""

from pathlib import Path

import pytest

import tunekit as tk
from conftest import ROOT

TRAINING = [p for p in sorted((ROOT / "examples").glob("*.yaml")) if "merge" not in p.name and "predict" not in p.name]


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_example_trains_on_the_tiny_model(path, tmp_path):
    cfg = tk.load_config(path, model_name_or_path="tiny-random-llama", max_steps=2, output_dir=str(tmp_path / "out"),
                         max_samples=16)
    if cfg.stage == "ppo":  # its reward model comes from rm_lora.yaml's run: here a rule stands in
        result = tk.train(cfg, reward_fn=lambda prompts, responses: [len(r) / 100 for r in responses],
                          reward_model_type="function")
    elif cfg.stage == "distill":  # its teacher comes from grpo_lora.yaml's run: here the tiny model stands in
        result = tk.train(cfg, teacher_model="tiny-random-llama")
    else:
        result = tk.train(cfg)
    assert (Path(result.output_dir) / "trainer_log.jsonl").is_file()
    assert [r["step"] for r in tk.read_log(result.log_path) if "loss" in r][-1] == 2


def test_merge_example_names_the_adapter_to_merge():
    cfg = tk.load_config(ROOT / "examples" / "merge_lora.yaml")
    assert cfg.adapter_name_or_path and cfg.export_dir and not cfg.do_train


def test_predict_example_predicts_without_training(tmp_path):
    out = tmp_path / "predict"
    cfg = tk.load_config(ROOT / "examples" / "sft_lora_predict.yaml", model_name_or_path="tiny-random-llama",
                         adapter_name_or_path=None, max_samples=2, max_new_tokens=4, output_dir=str(out))
    assert cfg.do_predict and not cfg.do_train
    tk.train(cfg)
    assert (out / "generated_predictions.jsonl").is_file() and (out / "predict_results.json").is_file()
    assert not (out / "adapter_config.json").exists()
