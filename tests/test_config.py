"""Config: the seed's YAML loads with LLaMA-Factory's meanings; every bad key or value is one clear line."""

from pathlib import Path

import pytest

import tunekit as tk
from conftest import ROOT, run_cli

SEED_PT = Path(__file__).parent / "data" / "seed_pt.yaml"


def test_seed_pt_yaml_loads_with_llamafactory_meanings():
    cfg = tk.load_config(SEED_PT)
    assert cfg.stage == "pt" and cfg.finetuning_type == "lora" and cfg.lora_target == "all"
    assert cfg.learning_rate == pytest.approx(1e-4) and isinstance(cfg.learning_rate, float)
    assert cfg.num_train_epochs == 3.0 and cfg.gradient_accumulation_steps == 8
    assert cfg.bf16 is True and cfg.ddp_timeout == 180000000 and cfg.plot_loss is True
    assert tk.STAGES["pt"].packed(cfg) and cfg.packing is None  # packing defaults on for pt (the stage says so)
    assert cfg.lora_alpha == 2 * cfg.lora_rank


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_yaml_is_valid(path):
    tk.load_config(path)


def test_strings_that_are_numbers_and_booleans_are_converted(tmp_path):
    cfg = tk.load_config({"dataset": "identity", "learning_rate": "1e-4", "max_steps": "30", "bf16": "false",
                          "val_size": "0.1", "lora_rank": 16.0})
    assert cfg.learning_rate == 1e-4 and cfg.max_steps == 30 and cfg.bf16 is False
    assert cfg.val_size == 0.1 and cfg.lora_rank == 16 and isinstance(cfg.lora_rank, int)


def test_overrides_win_over_the_file_and_lists_become_comma_lists():
    cfg = tk.load_config(SEED_PT, "max_steps=5", "learning_rate=2e-4", dataset=["c4_demo", "identity"])
    assert cfg.max_steps == 5 and cfg.learning_rate == 2e-4 and cfg.datasets == ["c4_demo", "identity"]


def test_resume_from_checkpoint_takes_a_boolean_or_a_path():
    assert tk.load_config({"dataset": "identity", "resume_from_checkpoint": "true"}).resume_from_checkpoint is True
    path = tk.load_config({"dataset": "identity", "resume_from_checkpoint": "out/checkpoint-3"})
    assert path.resume_from_checkpoint == "out/checkpoint-3"


def test_config_round_trips_through_yaml(tmp_path):
    cfg = tk.load_config(SEED_PT, max_steps=7)
    cfg.to_yaml(tmp_path / "again.yaml")
    assert tk.load_config(tmp_path / "again.yaml") == cfg


BAD = [
    ({"learnig_rate": 1e-4}, ["learnig_rate", "did you mean 'learning_rate'"]),
    ({"lora_rank": "eight"}, ["lora_rank", "integer"]),
    ({"learning_rate": "fast"}, ["learning_rate", "number"]),
    ({"bf16": "maybe"}, ["bf16", "boolean"]),
    ({"stage": "grpo2"}, ["stage", "pt, sft, rm, ppo, dpo, kto"]),
    ({"stage": "dpo", "pref_loss": "sigmod"}, ["pref_loss", "did you mean 'sigmoid'"]),
    ({"finetuning_type": "qlora"}, ["finetuning_type", "lora, freeze, full"]),
    ({"per_device_train_batch_size": 0}, ["per_device_train_batch_size", "at least 1"]),
    ({"learning_rate": -1}, ["learning_rate", "negative"]),
    ({"stage": "ppo"}, ["reward_model"]),
]


@pytest.mark.parametrize("values,words", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_values_raise_config_error_naming_the_key(values, words):
    with pytest.raises(tk.ConfigError) as err:
        tk.load_config({"dataset": "identity", **values})
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    listed = tmp_path / "list.yaml"
    listed.write_text("- stage: sft\n- dataset: identity\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("stage: sft\n  dataset: [identity\n")
    for path, word in ((empty, "empty"), (listed, "mapping"), (broken, "not valid YAML"),
                       (tmp_path / "missing.yaml", "does not exist")):
        with pytest.raises(tk.ConfigError, match=word):
            tk.load_config(path)


@pytest.mark.parametrize("override,word", [
    ("learnig_rate=1e-4", "learning_rate"),
    ("lora_rank=eight", "lora_rank"),
    ("stage=sftt", "stage"),
    ("pref_loss=sigmod", "pref_loss"),
])
def test_cli_prints_one_line_and_exits_2(tmp_path, override, word):
    proc = run_cli("train", SEED_PT, "model_name_or_path=tiny-random-llama", override, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tunekit: error:") and word in lines[0]
    assert "Traceback" not in proc.stderr


def test_output_dir_with_results_is_refused_without_overwrite(tmp_path):
    from tunekit.outputs import check_output_dir

    out = tmp_path / "out"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoint-12").mkdir()
    cfg = tk.load_config({"dataset": "identity", "output_dir": str(out)})
    with pytest.raises(tk.ConfigError) as err:
        check_output_dir(cfg)
    assert "overwrite_output_dir" in str(err.value) and "output_dir" in str(err.value)
    assert "resume_from_checkpoint" in str(err.value) and "checkpoint-12" in str(err.value)
    check_output_dir(tk.load_config({"dataset": "identity", "output_dir": str(out), "overwrite_output_dir": True}))


def test_hardware_keys_degrade_with_one_warning_each():
    from tunekit.run import hardware_fallbacks

    cfg = tk.load_config(SEED_PT)
    with pytest.warns(UserWarning) as caught:
        decided = hardware_fallbacks(cfg, cuda=False, bf16_ok=False, processes=1)
    messages = [str(w.message) for w in caught]
    assert decided["bf16"] is False and cfg.ddp_timeout == 180000000
    assert cfg.bf16 is True  # the plan decides; the config keeps what it said
    assert sum("bf16" in m for m in messages) == 1 and sum("ddp_timeout" in m for m in messages) == 1
    with pytest.warns(UserWarning, match="pure_bf16: true needs a GPU with bf16; this CPU run trains in fp32"):
        hardware_fallbacks(tk.load_config({"dataset": "identity", "pure_bf16": True}), cuda=False, bf16_ok=False,
                           processes=1)  # LLaMA-Factory's key (its galore, apollo and mod examples)


def test_training_arguments_without_a_field_pass_through_and_unused_keys_warn(tmp_path):
    with pytest.warns(UserWarning, match="streaming is not used"):
        cfg = tk.load_config({"dataset": "identity", "save_only_model": True, "adam_beta2": 0.95, "streaming": False})
    assert cfg.training_args == {"save_only_model": True, "adam_beta2": 0.95}
    kwargs = tk.plan(cfg, output_dir=str(tmp_path / "out")).training_args(has_eval=False)
    assert kwargs["save_only_model"] is True and kwargs["adam_beta2"] == 0.95
    assert "save_only_model: true" in cfg.to_yaml()


def test_a_typical_llamafactory_sft_yaml_trains_unchanged_but_for_model_and_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tk.load_config(Path(__file__).parent / "data" / "llamafactory_sft.yaml",
                         "model_name_or_path=tiny-random-llama", "max_steps=2", "dataloader_num_workers=0")
    result = tk.train(cfg)
    assert result.output_dir == "saves/llama3-8b/lora/sft" and (tmp_path / result.output_dir / "adapter_config.json").is_file()
    assert result.metrics["eval_loss"] > 0  # val_size: 0.1 gives a final evaluation
