"""The model families people fine-tune, as tiny random models with their real chat templates: every stage trains two
steps, the DataPanel shows a row, chat answers through the template, and the merged export loads in transformers."""

import math

import pytest
import torch
from families import FAMILIES, tiny_model

import tunekit as tk
from tunekit import rendering
from tunekit.config import parse_config
from tunekit.export import export

STAGES = {
    "pt": {"dataset": "c4_demo"},
    "sft": {"dataset": "identity"},
    "rm": {"dataset": "dpo_en_demo"},
    "dpo": {"dataset": "dpo_en_demo"},
    "kto": {"dataset": "kto_en_demo"},
    "ppo": {"dataset": "alpaca_en_demo", "max_new_tokens": 8},
    "grpo": {"dataset": "math_demo", "reward_funcs": "format", "num_generations": 2, "max_new_tokens": 8},
}


def finite_losses(result):
    values = [r[key] for r in tk.read_log(result.log_path) for key in ("loss", "ppo/loss/total") if key in r]
    return values and all(math.isfinite(v) for v in values)


# gemma2 (Gemma 2's template: no system role) stands for Gemma here; gemma3 is exported to GGUF in test_gguf.py
MATRIX = ("llama3", "qwen2_5", "qwen3", "qwen3_2507", "gemma2", "phi3", "mistral")


@pytest.mark.parametrize("family", MATRIX)
def test_every_stage_panel_chat_and_export_on_the_family(family, tmp_path):
    folder = tiny_model(family, tmp_path / "model")
    base = {"model_name_or_path": str(folder), **FAMILIES[family][2], "cutoff_len": 128, "max_samples": 4,
            "per_device_train_batch_size": 2, "max_steps": 2, "logging_steps": 1, "save_steps": 1000,
            "learning_rate": 1e-3, "report_to": "none", "finetuning_type": "lora", "lora_target": "all"}
    results = {}
    for stage, keys in STAGES.items():
        extra = {"reward_model": str(tmp_path / "rm")} if stage == "ppo" else {}
        result = tk.train({**base, "stage": stage, **keys, **extra, "output_dir": str(tmp_path / stage)})
        assert finite_losses(result), (family, stage)
        results[stage] = result

    from tunekit.widgets import DataPanel

    sft = {**base, "stage": "sft", "dataset": "identity", "output_dir": str(tmp_path / "panel")}
    spans = DataPanel(sft).token_spans()[0]
    assert any(loss for _, loss in spans) and not all(loss for _, loss in spans)

    model, tokenizer = results["sft"].model, results["sft"].tokenizer
    answer = tk.generate(model, tokenizer, "Who are you?", max_new_tokens=6)
    assert isinstance(answer, str)
    shown = rendering.prompt_text(tokenizer, [{"role": "user", "content": "Who are you?"}])
    assert shown == tokenizer.apply_chat_template([{"role": "user", "content": "Who are you?"}], tokenize=False,
                                                  add_generation_prompt=True)

    merged = export(parse_config({**base, "adapter_name_or_path": str(tmp_path / "sft"), "do_train": False,
                                  "export_dir": str(tmp_path / "merged")}))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plain = AutoModelForCausalLM.from_pretrained(merged).eval()
    ids = torch.tensor([AutoTokenizer.from_pretrained(merged)(shown, add_special_tokens=False)["input_ids"]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, model(ids).logits, atol=1e-4), family
