"""Training: pt and sft learn, each finetuning type trains only its parameters, outputs are complete."""

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import tunekit as tk
from conftest import run_cli, write_dataset

SEED_PT = Path(__file__).parent / "data" / "seed_pt.yaml"


def losses(result):
    return [r["loss"] for r in tk.read_log(result.log_path) if "loss" in r]


@pytest.fixture
def repeated(tmp_path):
    """A small repeated corpus: one conversation and one text, many times over."""
    folder = tmp_path / "data"
    chat = {"instruction": "What colour is the sky?", "input": "", "output": "The sky is blue on a clear day."}
    write_dataset(folder, "sky", [chat] * 32, {})
    write_dataset(folder, "sky_text", [{"text": "the quick brown fox jumps over the lazy dog. " * 4}] * 32,
                  {"columns": {"prompt": "text"}}, ".jsonl")
    return str(folder)


@pytest.mark.parametrize("stage,dataset", [("sft", "sky"), ("pt", "sky_text")])
def test_loss_falls_on_a_repeated_corpus(tiny, repeated, stage, dataset):
    result = tk.train({**tiny, "stage": stage, "dataset": dataset, "dataset_dir": repeated, "max_steps": 30,
                       "finetuning_type": "full", "learning_rate": 3e-3, "cutoff_len": 64})
    values = losses(result)
    assert len(values) >= 20
    assert sum(values[-3:]) / 3 < 0.5 * values[0], values


class Snapshot(TrainerCallback):
    """Copies every parameter when training begins, to compare with the end."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(result, snapshot):
    after = dict(result.model.named_parameters())
    return {n for n, p in snapshot.before.items() if not torch.equal(p, after[n].detach())}


def test_lora_trains_only_the_adapter(tiny):
    snap = Snapshot()
    result = tk.train({**tiny, "max_steps": 3, "learning_rate": 1e-2}, callbacks=[snap])
    changed = _changed(result, snap)
    assert changed and all("lora_" in n for n in changed)
    lora = {n for n in snap.before if "lora_" in n}
    assert changed == lora  # every adapter matrix trained, nothing else


def test_freeze_trains_only_the_last_layers(tiny):
    snap = Snapshot()
    result = tk.train({**tiny, "finetuning_type": "freeze", "freeze_trainable_layers": 1, "max_steps": 2,
                       "learning_rate": 1e-2}, callbacks=[snap])
    changed = _changed(result, snap)
    assert changed and all(".layers.1." in n for n in changed)
    assert {n for n in snap.before if ".layers.1." in n} == changed


def test_full_trains_every_parameter(tiny):
    snap = Snapshot()
    result = tk.train({**tiny, "finetuning_type": "full", "max_steps": 2, "learning_rate": 1e-2}, callbacks=[snap])
    assert _changed(result, snap) == set(snap.before)


def test_output_folder_holds_adapter_tokenizer_log_checkpoints_and_plot(tiny):
    result = tk.train({**tiny, "max_steps": 4, "save_steps": 2, "logging_steps": 2, "plot_loss": True})
    out = Path(result.output_dir)
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "trainer_log.jsonl",
                 "training_loss.png", "checkpoint-2", "checkpoint-4"):
        assert (out / name).exists(), name
    records = [r for r in tk.read_log(out) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 4]
    assert all({"step", "loss", "lr", "epoch"} <= set(r) for r in records)
    assert str(out / "training_loss.png") in result.plots
    assert result.metrics["train_loss"] > 0


def test_full_finetune_saves_a_loadable_model(tiny):
    result = tk.train({**tiny, "finetuning_type": "full", "max_steps": 2})
    model, tokenizer = tk.load_model({"model_name_or_path": result.output_dir, "do_train": False,
                                      "finetuning_type": "full"})
    assert isinstance(tk.generate(model, tokenizer, "Who are you?", max_new_tokens=4), str)


def test_overwrite_output_dir_is_respected(tiny):
    first = tk.train({**tiny, "max_steps": 2, "save_steps": 1})
    assert (Path(first.output_dir) / "checkpoint-2").is_dir()
    with pytest.raises(tk.ConfigError, match="overwrite_output_dir"):
        tk.train({**tiny, "max_steps": 2})
    second = tk.train({**tiny, "max_steps": 1, "overwrite_output_dir": True})
    out = Path(second.output_dir)
    assert not (out / "checkpoint-2").exists()  # the old run's checkpoints are gone with it
    assert max(r["step"] for r in tk.read_log(out)) == 1


def test_resumed_run_continues_from_its_checkpoint(tiny):
    whole = tk.train({**tiny, "max_steps": 6, "save_steps": 3, "output_dir": tiny["output_dir"] + "-whole"})
    cut = tk.train({**tiny, "max_steps": 6, "save_steps": 3})
    out = Path(cut.output_dir)
    for leftover in out.glob("checkpoint-6"):  # as if the run had died after step 3
        import shutil

        shutil.rmtree(leftover)
    resumed = tk.train({**tiny, "max_steps": 6, "save_steps": 3, "resume_from_checkpoint": True})
    steps = [r["step"] for r in tk.read_log(out) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # the log keeps steps 1-3 and continues with 4-6
    assert resumed.trainer.state.global_step == 6
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    assert losses(resumed)[3:] == pytest.approx(losses(whole)[3:], rel=1e-4)


def test_seed_pt_yaml_runs_through_the_cli(tmp_path):
    proc = run_cli("train", SEED_PT, "model_name_or_path=tiny-random-llama", "max_steps=5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "saves" / "llama3-8b" / "lora" / "sft"
    assert (out / "adapter_model.safetensors").is_file() and (out / "training_loss.png").is_file()
    assert [r["step"] for r in tk.read_log(out) if "loss" in r] == [1, 5]
    assert "warning: bf16" in proc.stderr  # bf16 degrades to fp32 on this CPU, with one warning
    assert "loss" in proc.stdout and str(Path("saves/llama3-8b/lora/sft")) in proc.stdout


def test_val_size_gives_eval_loss_in_metrics_and_log(tiny):
    result = tk.train({**tiny, "val_size": 0.2, "max_steps": 2})
    assert result.metrics["eval_loss"] > 0
    assert any("eval_loss" in r for r in tk.read_log(result.log_path))
    separate = tk.load_rows(tk.load_config({**tiny, "eval_dataset": "alpaca_en_demo", "max_samples": 7}), "chat")
    assert len(separate["train"]) == 7 and len(separate["eval"]) == 7


def test_no_second_final_evaluation_when_eval_steps_just_ran_one(tiny):
    result = tk.train(tiny, val_size=0.1, eval_strategy="steps", eval_steps=2, max_steps=4)
    evals = [r["step"] for r in tk.read_log(result.log_path) if "eval_loss" in r]
    assert evals == [2, 4]
    assert result.metrics["eval_loss"] > 0


def test_gradient_checkpointing_is_chosen_from_memory_and_said(tiny, capsys, monkeypatch):
    import psutil

    class Plenty:  # whatever this machine has free: the tests hold on any machine
        available = 16 * 2**30

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Plenty())
    result = tk.train({**tiny, "max_steps": 1})
    said = capsys.readouterr().out
    assert "gradient checkpointing: off, for speed" in said  # the tiny model fits easily
    assert "that LLaMA-Factory's default (on) would recompute" in said  # what off costs beyond LF's default
    assert not result.trainer.args.gradient_checkpointing

    class Scarce:  # a machine with 1 MiB left: less than even the tiny model's activations (a few MiB)
        available = 2**20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Scarce())
    tight = tk.train({**tiny, "max_steps": 1, "cutoff_len": 512, "output_dir": tiny["output_dir"] + "-tight"})
    assert "gradient checkpointing: on" in capsys.readouterr().out
    assert tight.trainer.args.gradient_checkpointing
    forced = tk.train({**tiny, "max_steps": 1, "output_dir": tiny["output_dir"] + "-set",
                       "disable_gradient_checkpointing": True})  # LLaMA-Factory's key
    assert "gradient checkpointing: off (set in the config)" in capsys.readouterr().out
    assert not forced.trainer.args.gradient_checkpointing


def test_activation_estimate_matches_the_measured_gap_of_the_default_model():
    from tunekit.estimate import activation_bytes

    smollm2 = {"hidden": 576, "inner": 1536, "heads": 9, "kv_heads": 3, "layers": 30, "vocab": 49152}
    # issue 7's table: the plain loop's peak RSS is 1.8 GiB above LLaMA-Factory's checkpointed run (4.2 vs 2.4)
    gap = activation_bytes(smollm2, 4, 256, False) - activation_bytes(smollm2, 4, 256, True)
    assert 1.2 * 2**30 < gap < 2.6 * 2**30
