"""The command line: train, chat and export on the tiny model."""

from pathlib import Path

import tunekit as tk
from conftest import run_cli


def test_train_then_chat_then_export(tmp_path, tiny):
    config = tmp_path / "sft.yaml"
    tk.load_config({**tiny, "max_steps": 2}).to_yaml(config)
    out = Path(tiny["output_dir"])
    trained = run_cli("train", config, "logging_steps=1", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "loss" in trained.stdout and str(out) in trained.stdout

    chat = run_cli("chat", "--model", "tiny-random-llama", "--adapter", out, "--prompt", "Who are you?",
                   "--max-new-tokens", "5")
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert "you>" not in chat.stdout  # one prompt, one answer, no loop
    adapted, tokenizer = tk.load_for_inference("tiny-random-llama", str(out))
    assert chat.stdout.strip() == tk.generate(adapted, tokenizer, "Who are you?", max_new_tokens=5)  # greedy

    merged = tmp_path / "merged"
    exported = run_cli("export", "--adapter", out, "--export-dir", merged)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    assert any(merged.glob("*.safetensors"))
    model, tokenizer = tk.load_for_inference(str(merged))
    prompt = tokenizer("Who are you?", return_tensors="pt")
    import torch

    with torch.no_grad():  # the merged model computes what base + adapter computes
        assert torch.allclose(model(**prompt).logits, adapted(**prompt).logits, atol=1e-4)


def test_export_of_a_reward_model_keeps_its_score_head(tmp_path, tiny):
    """03_reward_model's closing cell prints this export line: the merged model must score as the adapter did."""
    result = tk.train({**tiny, "stage": "rm", "dataset": "dpo_en_demo", "max_steps": 2})
    merged = tmp_path / "rm-merged"
    exported = run_cli("export", "--adapter", result.output_dir, "--export-dir", merged)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "ForSequenceClassification" in (merged / "config.json").read_text()
    prompts, answers = ["Who are you?", "What is 2 + 2?"], ["I am Tuna.", "4"]
    expected = tk.score(*tk.load_reward_model(result.output_dir), prompts, answers)
    got = tk.score(*tk.load_reward_model(str(merged)), prompts, answers)
    assert max(abs(a - b) for a, b in zip(expected, got)) < 1e-4, (expected, got)


def test_chat_reads_prompts_until_an_empty_line(tmp_path):
    proc = run_cli("chat", "--model", "tiny-random-llama", "--max-new-tokens", "3", input="hello\nhow are you\n\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("model>") == 2


def test_export_without_export_dir_is_one_line(tmp_path):
    proc = run_cli("export", "--model", "tiny-random-llama", "--adapter", tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_chat_takes_a_llamafactory_inference_yaml(tmp_path, tiny):
    result = tk.train({**tiny, "max_steps": 1})
    config = tmp_path / "infer.yaml"
    config.write_text(f"model_name_or_path: tiny-random-llama\nadapter_name_or_path: {result.output_dir}\n"
                      "template: chatml\nfinetuning_type: lora\n")
    proc = run_cli("chat", config, "--prompt", "Who are you?", "--max-new-tokens", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, tokenizer = tk.load_for_inference("tiny-random-llama", result.output_dir)
    assert proc.stdout.strip() == tk.generate(model, tokenizer, "Who are you?", max_new_tokens=3)


def test_a_missing_data_set_is_answered_before_torch_is_imported(tmp_path):
    """Mistakes in the config and the data registry are answered at once: nothing heavy is imported first."""
    import subprocess
    import sys

    (tmp_path / "dataset_info.json").write_text('{"mine": {"file_name": "nope.json"}}')
    config = tmp_path / "c.yaml"
    config.write_text(f"model_name_or_path: tiny-random-llama\ndataset: mine\ndataset_dir: {tmp_path}\n"
                      f"output_dir: {tmp_path / 'out'}\n")
    code = (f"import sys; from tunekit.cli import main; code = main(['train', {str(config)!r}]); "
            "print(code, sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "2 []", proc.stdout + proc.stderr
    assert "nope.json does not exist" in proc.stderr


def test_bitsandbytes_notice_of_a_missing_cpu_kernel_package_is_dropped_and_its_other_warnings_kept(caplog):
    """On a CPU with AVX-512 BF16, importing bitsandbytes (peft does) logged this before every one-line error."""
    import logging

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING):
        logger.warning("%s: No module named 'kernels'. Please make sure you already `pip install kernels`",
                       tk.BNB_KERNEL_NOTICE)
        logger.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes warning"]
