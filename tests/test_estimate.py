"""Will it fit, how long will it take: the plan's parts against closed forms on the tiny model, `tunekit plan` for
every stage and example YAML, and the plan line before every run with predicted and measured after it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tunekit as tk
from tunekit.cli import main as cli
from tunekit.estimate import (CALIBRATION, GIB, activation_bytes, estimate, matmul_parameters, meta_model,
                              model_shape, step_flops)
from tunekit.run import load_config
from tunekit.stages import STAGES, stage_of

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml"))


def tiny(**keys):
    return load_config(None, **{"model_name_or_path": "tiny-random-llama", "dataset": "identity", "cutoff_len": 64,
                                **keys})


def test_parameter_counts_match_the_loaded_model_for_lora_full_and_freeze():
    for keys in ({"finetuning_type": "lora", "lora_rank": 8}, {"finetuning_type": "full"},
                 {"finetuning_type": "freeze", "freeze_trainable_layers": 1}):
        cfg = tiny(**keys)
        model, _ = tk.load_model(cfg)
        shaped, _ = meta_model(cfg)
        count = lambda m, trainable: sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable)
        assert count(shaped, False) == count(model, False), keys
        assert count(shaped, True) == count(model, True), keys


def test_weights_gradients_and_optimizer_state_are_their_closed_forms():
    cfg = tiny(finetuning_type="lora", lora_rank=8, max_steps=10)
    predicted = estimate(cfg, stage_of(cfg), free=100 * GIB, rate=1e10, gpus=False)
    allocator = CALIBRATION["allocator"]
    assert predicted.parts["weights"] == 4 * predicted.parameters  # fp32 on a CPU
    assert predicted.parts["gradients"] == int(4 * predicted.trainable * allocator)
    assert predicted.parts["optimizer"] == int(8 * predicted.trainable * allocator)  # AdamW: two fp32 moments
    eight_bit = estimate(tiny(finetuning_type="lora", lora_rank=8, optim="adamw_bnb_8bit"), STAGES["sft"],
                         free=100 * GIB, rate=1e10, gpus=False)
    assert eight_bit.parts["optimizer"] == int(2 * predicted.trainable * allocator)


def test_activation_bytes_per_token_are_the_closed_form_and_checkpointing_keeps_one_layer():
    shape = {"hidden": 64, "inner": 128, "layers": 2, "heads": 4, "kv_heads": 2, "vocab": 1024}
    per_token_layer = CALIBRATION["layer_hidden"] * 64 + CALIBRATION["layer_inner"] * 128
    assert activation_bytes(shape, 1, 1, False) == 4 * 2 * (per_token_layer + 4)
    rows, length = 4, 32
    full = activation_bytes(shape, rows, length, False)
    assert full == 4 * 2 * (rows * length * per_token_layer + rows * 4 * length * length)
    kept = activation_bytes(shape, rows, length, True)
    kept_per_token = CALIBRATION["layer_checkpointed"] * 64
    assert kept == 4 * (2 * rows * length * kept_per_token + rows * length * per_token_layer + rows * 4 * length * length)
    assert activation_bytes(shape, 2 * rows, length, False) == 2 * full  # linear in the batch


def test_flops_count_what_a_token_is_multiplied_by_and_rows_scored_without_gradients_cost_a_forward():
    cfg = tiny(finetuning_type="full")
    model, _ = meta_model(cfg)
    lookup = model.get_input_embeddings().weight.numel()
    every = sum(p.numel() for p in model.parameters())
    sizes = model_shape(cfg).sizes
    head = sizes["vocab"] * sizes["hidden"]
    untied = model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    # the embedding is a lookup (no FLOPs); the LM head's projection counts, tied to it or not
    assert matmul_parameters(model_shape(cfg)) == every - lookup - (head if untied else 0) + head
    rm = load_config(None, model_name_or_path="tiny-random-llama", dataset="dpo_en_demo", stage="rm",
                     finetuning_type="full")
    scorer, _ = meta_model(rm, "score")
    assert matmul_parameters(model_shape(rm, "score"), "score") == (  # a reward model has no vocabulary projection
        sum(p.numel() for p in scorer.parameters()) - scorer.get_input_embeddings().weight.numel())

    shape = {"hidden": 64, "inner": 128, "layers": 2, "heads": 4, "kv_heads": 2, "vocab": 1024}
    m, batch, length = 10_000, 2, 32
    lora = tiny(per_device_train_batch_size=batch, pref_beta=0.1)
    attention = 6 * 2 * 64 * length
    trained = batch * length * (2 * m + 2 * m + 2 * 100 + attention)  # forward, activations' and LoRA's gradients
    assert step_flops(lora, STAGES["sft"], shape, m, 100, length, False) == trained
    assert step_flops(lora, STAGES["sft"], shape, m, 100, length, True, recompute=0.5) == (
        trained + batch * length * 0.5 * 2 * m)  # a forward again, at the share a CPU pays for it
    scored = batch * length * (2 * m + attention / 3)  # kto: another prompt's answer, forward only
    reference = 2 * batch * length * m  # the reference scores both
    assert step_flops(lora, STAGES["kto"], shape, m, 100, length, False) == trained + scored + reference
    kto = estimate(tiny(per_device_train_batch_size=batch, max_steps=10, stage="kto", dataset="kto_en_demo"),
                   STAGES["kto"], free=100 * GIB, rate=1e10, gpus=False)
    kept = activation_bytes(model_shape(cfg).sizes, batch, 64, False)  # the trained rows' activations only
    assert kto.parts["activations"] == int(kept * CALIBRATION["allocator"])


def test_peak_is_the_sum_of_the_parts_and_a_run_that_does_not_fit_gets_fixes_cheapest_first():
    cfg = load_config(None, model_name_or_path="smollm2-135m-instruct", dataset="identity", cutoff_len=2048,
                      per_device_train_batch_size=16, finetuning_type="full", max_steps=100)
    predicted = estimate(cfg, STAGES["sft"], free=4 * GIB, rate=1e10, checkpointing=False)
    assert predicted.peak == sum(predicted.parts.values()) and not predicted.fits
    assert "does not fit" in predicted.line() and predicted.fixes
    assert all(f["peak_memory_bytes"] < predicted.peak for f in predicted.fixes)
    order = ["gradient_checkpointing", "per_device_train_batch_size", "cutoff_len", "lora_rank", "finetuning_type",
             "quantization_bit"]
    said = [order.index(next(k for k in order if f["change"].startswith(k))) for f in predicted.fixes]
    assert said == sorted(said)  # cheapest first
    kept = estimate(cfg, STAGES["sft"], free=4 * GIB, rate=1e10, checkpointing=True, fixes=False).peak
    roomy = estimate(cfg, STAGES["sft"], free=kept + GIB // 10, rate=1e10, checkpointing=False)
    assert all(f["fits"] for f in roomy.fixes) and roomy.fixes[0]["change"] == "gradient_checkpointing: true"
    gpus = {g["name"]: g for g in predicted.gpus}
    assert set(gpus) >= {"T4 16 GB", "L4 24 GB", "A10G 24 GB", "A100 40 GB", "A100 80 GB", "H100 80 GB"}
    assert gpus["H100 80 GB"]["seconds_per_step"] < gpus["T4 16 GB"]["seconds_per_step"]
    assert gpus["T4 16 GB"]["seconds_per_step_unsloth"] < gpus["T4 16 GB"]["seconds_per_step"]


def test_the_plan_follows_the_keys_that_cost():
    base = estimate(tiny(per_device_train_batch_size=2, max_steps=10), STAGES["sft"], free=100 * GIB, rate=1e10)
    bigger = estimate(tiny(per_device_train_batch_size=8, max_steps=10), STAGES["sft"], free=100 * GIB, rate=1e10)
    kept = estimate(tiny(per_device_train_batch_size=8, max_steps=10, gradient_checkpointing=True), STAGES["sft"],
                    free=100 * GIB, rate=1e10)
    assert bigger.parts["activations"] > base.parts["activations"] > 0
    assert kept.parts["activations"] < bigger.parts["activations"]
    assert kept.seconds_per_step > bigger.seconds_per_step  # the forward pass is recomputed
    full = estimate(tiny(finetuning_type="full", max_steps=10), STAGES["dpo"], free=100 * GIB, rate=1e10)
    assert full.parts["reference"] == full.parts["weights"]  # a frozen copy is the reference
    lora = estimate(tiny(max_steps=10), STAGES["dpo"], free=100 * GIB, rate=1e10)
    assert lora.parts["reference"] == 0  # the base with the adapter off
    grpo = estimate(tiny(max_steps=10, num_generations=2, per_device_train_batch_size=2, max_new_tokens=16,
                         stage="grpo"), STAGES["grpo"], free=100 * GIB, rate=1e10)
    assert grpo.parts["kv_cache"] > 0


def test_the_fixed_costs_scale_with_this_machines_matrix_multiply_rate():
    """A step's fixed cost is counted in the calibrating machine's seconds: on a CPU with half its matrix-multiply
    rate it doubles, as the arithmetic's share does."""
    cfg = tiny(max_steps=10)
    rate = CALIBRATION["matmul_rate_cpu"]
    same = estimate(cfg, STAGES["dpo"], free=100 * GIB, rate=rate, gpus=False).seconds_per_step
    slower = estimate(cfg, STAGES["dpo"], free=100 * GIB, rate=rate / 2, gpus=False).seconds_per_step
    fixed = CALIBRATION["step_overhead_cpu"] + CALIBRATION["forward_overhead_cpu"]
    assert slower == pytest.approx(2 * same)
    assert same > fixed  # the fixed part at the calibrating machine's rate, and the arithmetic besides


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_reference_log_probs_cached_before_training_cost_no_forward_per_step(stage, monkeypatch):
    """Where the run sees each row more than once, dpo and kto compute the reference's log-probs once before training
    (``precompute_reference``, the run's own decision): the plan then counts no reference forward per step (its
    FLOPs and its fixed cost) and no frozen copy of fully fine-tuned weights; ``precompute_ref_log_probs: false``
    keeps both."""
    from tunekit.stages.preference import precompute_reference

    monkeypatch.setitem(CALIBRATION, "efficiency_cpu", float("inf"))  # the fixed costs alone
    rate, rows = CALIBRATION["matmul_rate_cpu"], 16
    data = "kto_en_demo" if stage == "kto" else "dpo_en_demo"

    def plan(steps, **keys):
        cfg = tiny(stage=stage, dataset=data, per_device_train_batch_size=2, max_steps=steps, **keys)
        return cfg, estimate(cfg, STAGES[stage], rows=rows, free=100 * GIB, rate=rate, gpus=False)

    once_cfg, once = plan(8)  # 16 rows, each seen once: the reference runs every step
    twice_cfg, twice = plan(16)  # each seen twice: cached
    assert not precompute_reference(once_cfg, rows, quiet=True) and precompute_reference(twice_cfg, rows, quiet=True)
    forward = CALIBRATION["forward_overhead_cpu"]
    assert once.seconds_per_step - twice.seconds_per_step == pytest.approx((2 if stage == "kto" else 1) * forward)
    assert plan(16, precompute_ref_log_probs=False)[1].seconds_per_step == pytest.approx(once.seconds_per_step)
    epochs = tiny(stage=stage, dataset=data, per_device_train_batch_size=2, num_train_epochs=2)  # rows not known
    assert estimate(epochs, STAGES[stage], free=100 * GIB, rate=rate, gpus=False).seconds_per_step == pytest.approx(
        twice.seconds_per_step)
    assert plan(8, finetuning_type="full")[1].parts["reference"] > 0
    assert plan(16, finetuning_type="full")[1].parts["reference"] == 0  # trl keeps no copy when they are cached


def test_ppo_pays_a_steps_fixed_cost_per_pass_over_its_buffer(monkeypatch):
    """tunekit's ppo loop makes ppo_epochs x ppo_buffer_size updates per step, each with the fixed cost of a trainer
    step (its forward, backward and optimizer bookkeeping), and samples each buffer's batches."""
    monkeypatch.setitem(CALIBRATION, "efficiency_cpu", float("inf"))  # the arithmetic left out: the fixed costs alone
    rate = CALIBRATION["matmul_rate_cpu"]

    def seconds(**keys):
        cfg = tiny(**{"stage": "ppo", "max_steps": 10, "max_new_tokens": 16, "reward_model_type": "function"} | keys)
        return estimate(cfg, STAGES["ppo"], free=100 * GIB, rate=rate, gpus=False).seconds_per_step

    step = CALIBRATION["step_overhead_cpu"]
    assert seconds(ppo_epochs=4) - seconds(ppo_epochs=1) == pytest.approx(3 * step)
    sampled = seconds(ppo_epochs=1, max_new_tokens=32) - seconds(ppo_epochs=1)  # 16 more tokens in one buffer
    assert sampled > 0
    assert seconds(ppo_epochs=1, ppo_buffer_size=2) - seconds(ppo_epochs=1) == pytest.approx(step + sampled)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_tunekit_plan_json_for_every_example_yaml(example, capsys):
    assert cli(["plan", str(example), "--json"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[out.index("{"):])
    assert plan["peak_memory_bytes"] > plan["parts"]["weights"] > 0 and plan["seconds_per_step"] > 0
    assert {g["name"] for g in plan["gpus"]} >= {"T4 16 GB", "H100 80 GB"}


def test_tunekit_plan_needs_only_the_model_config_and_says_when_it_cannot_read_it(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "my-1b"  # a Llama 3.2 1B's shape: config.json only, no weights
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "tie_word_embeddings": True, "max_position_embeddings": 2048}))
    assert cli(["plan", f"model_name_or_path={folder}", "dataset=identity", "cutoff_len=512", "--json"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[out.index("{"):])
    assert 1.2e9 < plan["parameters"] < 1.3e9  # 1.24 billion, tied embeddings counted once
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli(["plan", "model_name_or_path=some-org/some-model", "dataset=identity"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json cannot be read" in err[0] and "local folder" in err[0]


PLAN_AND_SAY_TORCH = ("import sys\nfrom tunekit.cli import main\ncode = main(sys.argv[1:])\n"
                      "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n"
                      "sys.exit(code)")


def test_a_second_plan_of_the_same_model_and_data_is_read_from_the_cache_without_torch(tmp_path):
    from tunekit.models import resolve_model

    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"instruction": f"Say {i}.", "output": f"{i}."}) for i in range(6)))
    env = {**os.environ, "TUNEKIT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    keys = [f"model_name_or_path={resolve_model('tiny-random-llama')}", f"dataset={rows}", "cutoff_len=256"]

    def plan(*more):
        done = subprocess.run([sys.executable, "-c", PLAN_AND_SAY_TORCH, "plan", "--json", *keys, *more],
                              capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout[done.stdout.index("{"):]), done.stderr.strip().splitlines()[-1]

    first, imported = plan()
    assert imported == "torch imported"  # the model's shape and the rows' lengths are read once
    second, imported = plan("per_device_train_batch_size=4", "cutoff_len=8")  # keys that do not shape the model
    assert imported == "no torch"  # or the rows
    assert second["parameters"] == first["parameters"] and second["length"] == 8
    assert second["tokens_per_step"] == 4 * 8
    again, _ = plan()
    same = lambda plan: {k: v for k, v in plan.items() if k not in ("free_bytes", "fits", "fixes")}
    assert same(again) == same(first)
    rows.write_text(json.dumps({"instruction": "Say " + "very " * 60 + "much.", "output": "ok"}) + "\n"
                    + rows.read_text())  # the file changed: its rows are read again
    longer, imported = plan()
    assert imported == "torch imported" and longer["length"] > first["length"]


def test_every_stage_says_the_plan_before_training_and_records_predicted_and_measured(tmp_path, capsys):
    cfg = tiny(max_steps=3, logging_steps=1, output_dir=str(tmp_path / "out"), per_device_train_batch_size=2)
    result = tk.train(cfg)
    out = capsys.readouterr().out
    assert "[tunekit] plan: about " in out and "s/step here" in out
    assert out.index("[tunekit] plan: about ") < out.index("plan against measurement")
    saved = json.loads((tmp_path / "out" / "all_results.json").read_text())
    for key in ("plan_peak_memory_bytes", "measured_peak_memory_bytes", "plan_seconds_per_step",
                "measured_seconds_per_step"):
        assert saved[key] > 0 and result.metrics[key] == saved[key]


MEASURE_TWICE = """
from tunekit.estimate import measured_peak, start_measuring
size = 256 * 2**20
held = bytearray(b"\\x01") * size  # written, so resident
peak = measured_peak(False)
del held  # a block this large goes back to the system when freed
start_measuring(False)
assert measured_peak(False) < peak - size * 3 // 4, (measured_peak(False), peak)
again = bytearray(b"\\x01") * size
assert measured_peak(False) >= peak - size // 4, (measured_peak(False), peak)  # and a new peak is seen
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux's per-process high-water mark")
def test_the_measured_peak_is_the_runs_own_not_what_the_process_held_before():
    """In a notebook's kernel an earlier run's peak is not this run's: the peak is counted from the plan on. (In a
    process of its own: in the test process, what other tests left running may allocate meanwhile.)"""
    done = subprocess.run([sys.executable, "-c", MEASURE_TWICE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
