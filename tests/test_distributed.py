"""Data-parallel training over two processes (torchrun, gloo on CPU): both ranks train in step, the
effective batch is doubled, and rank 0 alone writes a complete output folder."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tunekit as tk

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    from transformers import TrainerCallback
    import tunekit as tk

    class Record(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            weights = sum(float(p.double().sum()) for p in model.parameters() if p.requires_grad)
            record = {"rank": int(os.environ["RANK"]), "steps": state.global_step, "weights": weights}
            with open(os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.json"), "w") as handle:
                json.dump(record, handle)

    tk.train(json.loads(sys.argv[1]), callbacks=[Record()])
""")


def test_two_processes_train_one_model_with_twice_the_batch(tiny, tmp_path):
    tiny.update(max_steps=4, save_steps=2, learning_rate=1e-2)
    single = tk.train({**tiny, "output_dir": str(tmp_path / "single")})
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    proc = subprocess.run([*TORCHRUN, str(worker), json.dumps(tiny), str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in ranks] == [4, 4]  # both ranks trained every step ...
    assert ranks[0]["weights"] == pytest.approx(ranks[1]["weights"], rel=1e-9)  # ... in step: one model
    log = tk.read_log(tiny["output_dir"])
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == [1, 2, 3, 4]  # rank 0 alone writes the log
    single_log = {r["step"]: r for r in tk.read_log(single.output_dir) if "loss" in r}
    first = next(r for r in log if r["step"] == 1)
    assert first["num_tokens"] > 1.5 * single_log[1]["num_tokens"]  # twice the rows per optimizer step
    assert first["epoch"] > 1.5 * single_log[1]["epoch"]
    out = Path(tiny["output_dir"])
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "trainer_state.json",
                 "all_results.json", "checkpoint-2/trainer_state.json", "checkpoint-4/optimizer.pt"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp"))


def test_the_cli_under_torchrun_prints_once_and_saves(tiny, tmp_path):
    config = tmp_path / "ddp.yaml"
    tk.load_config({**tiny, "max_steps": 2}).to_yaml(config)
    proc = subprocess.run([*TORCHRUN, "-m", "tunekit", "train", str(config)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("[tunekit] saved the adapter") == 1 and "2 processes" in proc.stdout
    model, tokenizer = tk.load_for_inference("tiny-random-llama", tiny["output_dir"])
    assert isinstance(tk.generate(model, tokenizer, "Hi", max_new_tokens=2), str)


def test_ppo_says_it_runs_in_one_process(tiny, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(tk.ConfigError, match=r"stage='ppo' runs in a single process.*not torchrun"):
        tk.train({**tiny, "stage": "ppo", "reward_model_type": "function", "reward_model": "m:f",
                  "max_new_tokens": 4})


@pytest.mark.parametrize("name,stage", [("ds_z2_config.json", 2), ("ds_z3_config.json", 3)])
def test_deepspeed_examples_are_zero_configs_the_trainer_fills_in(name, stage, tmp_path):
    from conftest import ROOT

    config = json.loads((ROOT / "examples" / "deepspeed" / name).read_text())
    assert config["zero_optimization"]["stage"] == stage
    assert config["train_micro_batch_size_per_gpu"] == "auto"  # taken from the YAML by the Trainer
    cfg = tk.load_config(ROOT / "examples" / "sft_lora_multi_gpu.yaml", deepspeed=str(ROOT / "examples" / "deepspeed" / name))
    with pytest.warns(UserWarning, match="deepspeed"):  # on a CPU it is dropped, with a warning
        assert tk.plan(cfg, cuda=False, output_dir=str(tmp_path / "cpu")).training_args(False)["deepspeed"] is None
    on_gpu = tk.plan(cfg, cuda=True, output_dir=str(tmp_path / "gpu"))
    assert on_gpu.training_args(False)["deepspeed"] == str(ROOT / "examples" / "deepspeed" / name)


def test_fsdp_in_llamafactorys_words_becomes_the_form_transformers_keeps_and_is_dropped_without_cuda(tmp_path):
    cfg = tk.load_config({"dataset": "identity", "fsdp": "full_shard auto_wrap", "output_dir": str(tmp_path / "o"),
                          "fsdp_config": {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}})
    kwargs = tk.plan(cfg, cuda=True).training_args(False)
    assert kwargs["fsdp"] is True  # not the string transformers 5.20 drops
    assert kwargs["fsdp_config"] == {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
                                     "reshard_after_forward": True}
    with pytest.warns(UserWarning, match=r"fsdp='full_shard auto_wrap' needs CUDA GPUs; ignored on this CPU run"):
        kwargs = tk.plan(cfg, cuda=False).training_args(False)
    assert "fsdp" not in kwargs and "fsdp_config" not in kwargs
    with pytest.raises(tk.ConfigError, match="fsdp='hybrid_shard'"):
        tk.plan({**cfg.to_dict(), "fsdp": "hybrid_shard"}, cuda=True)


def test_ddp_does_not_look_for_unused_parameters_with_lora_unless_told(tiny, tmp_path):
    lora = tk.plan({**tiny}, cuda=False).training_args(False)
    assert lora["ddp_find_unused_parameters"] is False  # LLaMA-Factory's default for LoRA
    full = tk.plan({**tiny, "finetuning_type": "full", "output_dir": str(tmp_path / "f")}, cuda=False)
    assert full.training_args(False)["ddp_find_unused_parameters"] is None  # the Trainer decides
    told = tk.plan({**tiny, "ddp_find_unused_parameters": True, "output_dir": str(tmp_path / "t")}, cuda=False)
    assert told.training_args(False)["ddp_find_unused_parameters"] is True


DDP_WORKER = textwrap.dedent("""
    import json, os, sys
    import tunekit as tk

    plan = tk.plan(json.loads(sys.argv[1]))
    built = tk.build(plan)
    tk.fit(plan, built)
    wrapped = built.trainer.model_wrapped
    record = {"wrapper": type(wrapped).__name__, "find_unused": getattr(wrapped, "find_unused_parameters", None)}
    with open(os.path.join(sys.argv[2], f"ddp{os.environ['RANK']}.json"), "w") as handle:
        json.dump(record, handle)
""")


def test_ddp_with_lora_runs_without_the_unused_parameter_search(tiny, tmp_path):
    worker = tmp_path / "ddp_worker.py"
    worker.write_text(DDP_WORKER)
    proc = subprocess.run([*TORCHRUN, str(worker), json.dumps({**tiny, "max_steps": 1}), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads((tmp_path / f"ddp{r}.json").read_text()) for r in (0, 1)]
    assert records == [{"wrapper": "DistributedDataParallel", "find_unused": False}] * 2
    assert "find_unused_parameters=True" not in proc.stderr
