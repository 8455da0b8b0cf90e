"""The catalogue of bad inputs: what users mistype, misplace or mix up, and the answer each must get.

Each ``Case`` builds its input in a fresh folder: a config (a dict, written as YAML for the CLI) or
a config file of its own. ``tests/test_bad_inputs.py`` runs every case through ``tk.train`` (the
error class and every word of ``words`` in its message) and through ``tunekit train`` (exit code 2,
one line on stderr with those words, no traceback). ``WARNINGS`` are inputs that train, with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from conftest import write_dataset

ALPACA_ROW = {"instruction": "What colour is the sky?", "input": "", "output": "Blue."}
SHAREGPT_ROW = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}


def base(tmp: Path, **keys) -> dict:
    """A config that trains: the tiny model, sft on the bundled identity set, one step."""
    return {"model_name_or_path": "tiny-random-llama", "stage": "sft", "dataset": "identity",
            "output_dir": str(tmp / "out"), "cutoff_len": 128, "per_device_train_batch_size": 2, "max_steps": 1,
            "report_to": "none", **keys}


def with_data(tmp: Path, rows, info: dict | None = None, suffix: str = ".json", name: str = "mine", **keys) -> dict:
    """A config training on ``rows`` registered as ``name`` in ``tmp/data/dataset_info.json``."""
    write_dataset(tmp / "data", name, rows, info or {}, suffix)
    return base(tmp, dataset=name, dataset_dir=str(tmp / "data"), **keys)


def with_file(tmp: Path, text: str, info: dict | None = None, file_name: str = "mine.json", **keys) -> dict:
    """A config training on a data file whose raw text is ``text``."""
    folder = tmp / "data"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_text(text)
    (folder / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": file_name, **(info or {})}}))
    return base(tmp, dataset="mine", dataset_dir=str(folder), **keys)


def with_rows_file(tmp: Path, rows: list, file_name: str = "mine.jsonl", **keys) -> dict:
    """A config training on ``rows`` written to a file that is named by its path (no dataset_info.json)."""
    path = tmp / file_name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return base(tmp, dataset=str(path), **keys)


def empty_dataframe_file(tmp: Path) -> dict:
    """A parquet file written from a DataFrame with columns and no rows."""
    import pandas as pd

    pd.DataFrame({"prompt": [], "completion": []}).astype(str).to_parquet(tmp / "empty.parquet")
    return base(tmp, dataset=str(tmp / "empty.parquet"))


def config_file(tmp: Path, text: str) -> Path:
    path = tmp / "config.yaml"
    path.write_text(text)
    return path


def lm_adapter(tmp: Path) -> Path:
    """The folder of a language-model LoRA adapter (what an sft run saves), its config only."""
    folder = tmp / "sft_adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "tiny-random-llama"}))
    return folder


def other_base_adapter(tmp: Path) -> Path:
    """A real LoRA adapter of another (wider) Llama, saved with its base's name."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    base_dir, adapter_dir = tmp / "other-llama", tmp / "other-adapter"
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=1024, hidden_size=96, intermediate_size=192, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    model.save_pretrained(base_dir)
    model = LlamaForCausalLM.from_pretrained(base_dir)  # so that the adapter records this base
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter_dir)
    return adapter_dir


def old_results(tmp: Path, step: int = 2, max_steps: int = 4) -> Path:
    """An output folder with what a run leaves: a log and a checkpoint."""
    out = tmp / "out"
    (out / f"checkpoint-{step}").mkdir(parents=True)
    (out / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step,
                                                                              "max_steps": max_steps}))
    (out / "trainer_log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    return out


def model_folder(tmp: Path, files: dict[str, str], tokenizer: bool = True) -> str:
    """A model folder holding ``files`` (and, unless told not to, the tiny model's tokenizer files)."""
    import shutil

    from tunekit.models import resolve_model

    folder = tmp / "my-model"
    folder.mkdir()
    if tokenizer:
        for path in Path(resolve_model("tiny-random-llama")).glob("*token*"):
            shutil.copy(path, folder)
    for name, text in files.items():
        (folder / name).write_text(text)
    return str(folder)


def broken_weights(tmp: Path) -> str:
    """A copy of the tiny model whose weights file was cut short (a download that died)."""
    import shutil

    from tunekit.models import resolve_model

    folder = tmp / "cut-model"
    shutil.copytree(resolve_model("tiny-random-llama"), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    return str(folder)


@dataclass
class Case:
    id: str
    build: Callable[[Path], dict | Path]
    error: str  # "ConfigError" | "DataError"
    words: list[str]  # each must appear in the message (the key or file, and the fix)
    env: dict = field(default_factory=dict)


OFFLINE = {"HF_HUB_OFFLINE": "1"}
LONG = "The sky is blue because air scatters the short blue wavelengths of sunlight more than red ones. " * 4

CASES = [
    # --- config: keys, types, ranges, choices -----------------------------------------------------
    Case("unknown_key_did_you_mean", lambda t: base(t, learning_rat=1e-4), "ConfigError",
         ["unknown config key 'learning_rat'", "did you mean 'learning_rate'"]),
    Case("llamafactory_yaml_with_one_typo", lambda t: base(t, use_unsloth=False, streaming=False, cutof_len=512),
         "ConfigError", ["unknown config key 'cutof_len'", "did you mean 'cutoff_len'"]),
    Case("unknown_key_without_a_match", lambda t: base(t, colour="blue"), "ConfigError",
         ["unknown config key 'colour'", "docs/config.md"]),
    Case("number_that_is_a_word", lambda t: base(t, learning_rate="fast"), "ConfigError",
         ["learning_rate", "'fast'", "number"]),
    Case("integer_that_is_a_word", lambda t: base(t, max_steps="ten"), "ConfigError", ["max_steps", "integer"]),
    Case("integer_with_a_fraction", lambda t: base(t, lora_rank=8.5), "ConfigError", ["lora_rank", "integer"]),
    Case("boolean_that_is_not", lambda t: base(t, bf16="maybe"), "ConfigError", ["bf16", "true/false"]),
    Case("list_for_a_number", lambda t: base(t, per_device_train_batch_size=[2, 4]), "ConfigError",
         ["per_device_train_batch_size", "integer"]),
    Case("null_for_a_required_key", lambda t: base(t, learning_rate=None), "ConfigError",
         ["learning_rate", "remove the line"]),
    Case("zero_batch_size", lambda t: base(t, per_device_train_batch_size=0), "ConfigError",
         ["per_device_train_batch_size=0", "at least 1"]),
    Case("negative_cutoff_len", lambda t: base(t, cutoff_len=-512), "ConfigError", ["cutoff_len=-512", "at least 1"]),
    Case("zero_gradient_accumulation", lambda t: base(t, gradient_accumulation_steps=0), "ConfigError",
         ["gradient_accumulation_steps=0", "at least 1"]),
    Case("zero_lora_rank", lambda t: base(t, lora_rank=0), "ConfigError", ["lora_rank=0", "at least 1"]),
    Case("negative_learning_rate", lambda t: base(t, learning_rate=-1e-4), "ConfigError",
         ["learning_rate", "must not be negative"]),
    Case("zero_max_steps", lambda t: base(t, max_steps=0), "ConfigError", ["max_steps=0", "-1"]),
    Case("zero_epochs", lambda t: base(t, max_steps=-1, num_train_epochs=0), "ConfigError",
         ["num_train_epochs", "max_steps"]),
    Case("warmup_ratio_above_one", lambda t: base(t, warmup_ratio=1.5), "ConfigError", ["warmup_ratio", "below 1"]),
    Case("top_p_above_one", lambda t: base(t, top_p=2), "ConfigError", ["top_p", "between 0 and 1"]),
    Case("seed_negative", lambda t: base(t, seed=-1), "ConfigError", ["seed=-1", "between 0 and 2**32 - 1"]),
    Case("lora_dropout_above_one", lambda t: base(t, lora_dropout=1.5), "ConfigError",
         ["lora_dropout=1.5", "below 1"]),
    Case("cutoff_len_one", lambda t: base(t, stage="pt", dataset="c4_demo", cutoff_len=1), "ConfigError",
         ["cutoff_len=1", "at least 2"]),
    Case("output_dir_empty", lambda t: base(t, output_dir=""), "ConfigError", ["output_dir is empty", "default"]),
    Case("model_name_empty", lambda t: base(t, model_name_or_path=" "), "ConfigError",
         ["model_name_or_path is empty", "smollm2-135m-instruct"]),
    Case("stage_not_a_choice", lambda t: base(t, stage="sftt"), "ConfigError",
         ["stage='sftt'", "pt, sft, rm, ppo, dpo, kto", "did you mean 'sft'"]),
    Case("pref_loss_not_a_choice", lambda t: base(t, stage="dpo", pref_loss="dpo"), "ConfigError",
         ["pref_loss='dpo'", "sigmoid"]),
    Case("finetuning_type_qlora", lambda t: base(t, finetuning_type="qlora"), "ConfigError",
         ["finetuning_type='qlora'", "lora, freeze, full", "quantization_bit: 4"]),
    Case("scheduler_typo", lambda t: base(t, lr_scheduler_type="cosin"), "ConfigError",
         ["lr_scheduler_type='cosin'", "did you mean 'cosine'"]),
    Case("eval_strategy_not_a_choice", lambda t: base(t, eval_strategy="sometimes"), "ConfigError",
         ["eval_strategy='sometimes'", "no, steps, epoch"]),
    Case("optimizer_unknown", lambda t: base(t, optim="adamw"), "ConfigError",
         ["optim='adamw'", "did you mean 'adamw_torch'"]),
    Case("logger_not_installed", lambda t: base(t, report_to="wandb"), "ConfigError",
         ["report_to='wandb'", "pip install wandb", "report_to: none"]),
    Case("bf16_and_fp16", lambda t: base(t, bf16=True, fp16=True), "ConfigError", ["bf16", "fp16", "choose one"]),
    Case("no_dataset", lambda t: {k: v for k, v in base(t).items() if k != "dataset"}, "ConfigError",
         ["dataset is not set", "dataset: identity"]),
    Case("deepspeed_config_missing", lambda t: base(t, deepspeed="ds_z2.json"), "ConfigError",
         ["deepspeed='ds_z2.json'", "not a file", "examples/deepspeed/ds_z2_config.json"]),
    Case("qlora_on_cpu", lambda t: base(t, quantization_bit=4), "ConfigError",
         ["quantization_bit=4", "CUDA", "remove it"]),
    Case("unsloth_on_cpu", lambda t: base(t, backend="unsloth"), "ConfigError", ["backend=unsloth", "backend: auto"]),
    Case("llamafactory_use_unsloth_on_cpu", lambda t: base(t, use_unsloth=True), "ConfigError",
         ["backend=unsloth needs a CUDA GPU", "backend: auto"]),
    Case("qlora_with_full_finetuning", lambda t: base(t, quantization_bit=4, finetuning_type="full"), "ConfigError",
         ["quantization_bit=4", "finetuning_type='full'", "finetuning_type: lora"]),
    # --- config: keys that must agree with each other or with what is on disk ---------------------
    Case("grpo_unknown_reward_function",
         lambda t: base(t, stage="grpo", dataset="math_demo", max_new_tokens=16, reward_funcs="accuracy,lenght"),
         "ConfigError", ["reward_funcs", "'lenght'", "did you mean 'length'", "module:function"]),
    Case("grpo_reward_function_not_importable",
         lambda t: base(t, stage="grpo", dataset="math_demo", max_new_tokens=16, per_device_train_batch_size=4,
                        reward_funcs="my_rewards:exact"),
         "ConfigError", ["reward_funcs", "'my_rewards:exact'", "cannot be imported", "module:function"]),
    Case("grpo_num_generations_not_dividing_the_batch",
         lambda t: base(t, stage="grpo", dataset="math_demo", max_new_tokens=16, num_generations=4,
                        per_device_train_batch_size=6),
         "ConfigError", ["num_generations=4", "per_device_train_batch_size", "= 6", "per_device_train_batch_size: 8"]),
    Case("grpo_reward_weights_that_do_not_match",
         lambda t: base(t, stage="grpo", dataset="math_demo", max_new_tokens=16, per_device_train_batch_size=4,
                        reward_weights="1.0"),
         "ConfigError", ["reward_weights='1.0'", "1 numbers for 2 rewards", "accuracy, format"]),
    Case("grpo_loss_type_misspelt",
         lambda t: base(t, stage="grpo", dataset="math_demo", max_new_tokens=16, per_device_train_batch_size=4,
                        loss_type="dr-grpo"),
         "ConfigError", ["loss_type='dr-grpo'", "grpo, dr_grpo, dapo", "did you mean 'dr_grpo'"]),
    Case("rloo_with_a_grpo_variant_key",
         lambda t: base(t, stage="rloo", dataset="math_demo", max_new_tokens=16, per_device_train_batch_size=4,
                        scale_rewards="none"),
         "ConfigError", ["scale_rewards", "not rloo's", "stage: grpo"]),
    Case("distill_without_a_teacher", lambda t: base(t, stage="distill", dataset="math_demo", max_new_tokens=16),
         "ConfigError", ["stage: distill needs teacher_model", "tokenizer"]),
    Case("distill_teacher_that_does_not_exist",
         lambda t: base(t, stage="distill", dataset="math_demo", max_new_tokens=16, cutoff_len=256,
                        teacher_model=str(t / "teacher")),
         "ConfigError", ["teacher_model=", "is not a folder, a hub id", "saves/07_grpo"]),
    Case("ppo_without_reward_model", lambda t: base(t, stage="ppo", max_new_tokens=32), "ConfigError",
         ["stage=ppo needs reward_model", "rm run"]),
    Case("reward_model_that_does_not_exist", lambda t: base(t, stage="ppo", reward_model=str(t / "rm"), max_new_tokens=32),
         "ConfigError", ["reward_model=", "does not exist", "stage: rm"]),
    Case("reward_model_that_is_an_sft_adapter", lambda t: base(t, stage="ppo", reward_model=str(lm_adapter(t)), max_new_tokens=32),
         "ConfigError", ["reward_model=", "not a reward model", "stage: rm"]),
    Case("reward_function_not_importable",
         lambda t: base(t, stage="ppo", reward_model_type="function", reward_model="no_such_module:reward", max_new_tokens=32),
         "ConfigError", ["reward_model='no_such_module:reward'", "cannot be imported"]),
    Case("ppo_answer_longer_than_cutoff", lambda t: base(t, stage="ppo", reward_model="x", max_new_tokens=256),
         "ConfigError", ["max_new_tokens=256", "cutoff_len=128"]),
    Case("dpo_on_an_sft_set", lambda t: base(t, stage="dpo"), "DataError",
         ["stage='dpo'", "preference set", "'identity'", "choose a matching dataset"]),
    Case("rm_on_an_sft_set", lambda t: base(t, stage="rm"), "DataError", ["stage='rm'", "'identity'", "preference"]),
    Case("kto_on_an_sft_set", lambda t: base(t, stage="kto"), "DataError", ["stage='kto'", "'identity'", "KTO set"]),
    Case("sft_on_a_preference_set", lambda t: base(t, dataset="dpo_en_demo"), "DataError",
         ["stage='sft'", "'dpo_en_demo'", "instruction (SFT) set"]),
    Case("kto_on_an_instruction_set", lambda t: base(t, stage="kto", dataset="alpaca_en_demo"), "DataError",
         ["stage='kto'", "'alpaca_en_demo'", "KTO set", "a preference set (each pair a good and a bad row)"]),
    Case("lora_target_names_no_module", lambda t: base(t, lora_target="q_proj,attention_out"), "ConfigError",
         ["lora_target=", "attention_out", "'all'", "v_proj"]),
    Case("lora_target_empty", lambda t: base(t, lora_target=""), "ConfigError",
         ["lora_target=''", "names no module", "'all'"]),
    Case("additional_target_names_no_module", lambda t: base(t, additional_target="embed,lm_head"), "ConfigError",
         ["additional_target='embed,lm_head'", "embed names no module", "embed_tokens"]),
    Case("adapter_that_does_not_exist", lambda t: base(t, adapter_name_or_path=str(t / "nope")), "ConfigError",
         ["adapter_name_or_path=", "not a saved adapter", "output_dir of a LoRA run"]),
    Case("adapter_of_another_base", lambda t: base(t, adapter_name_or_path=str(other_base_adapter(t))),
         "ConfigError", ["adapter_name_or_path=", "does not fit", "other-llama", "set model_name_or_path"]),
    Case("resume_path_that_does_not_exist", lambda t: base(t, resume_from_checkpoint=str(t / "out" / "checkpoint-9")),
         "ConfigError", ["resume_from_checkpoint=", "does not exist", "true"]),
    Case("resume_true_without_checkpoints", lambda t: base(t, resume_from_checkpoint=True), "ConfigError",
         ["resume_from_checkpoint: true", "no checkpoint", "save_steps"]),
    Case("resume_past_max_steps",
         lambda t: base(t, resume_from_checkpoint=str(old_results(t, step=4) / "checkpoint-4"), max_steps=2),
         "ConfigError", ["step 4", "max_steps=2", "raise max_steps"]),
    Case("output_dir_holds_results", lambda t: (old_results(t), base(t))[1], "ConfigError",
         ["output_dir=", "already holds results", "overwrite_output_dir: true", "resume_from_checkpoint: true"]),
    Case("output_dir_is_a_file", lambda t: ((t / "out").write_text("x"), base(t))[1], "ConfigError",
         ["output_dir=", "is a file", "another output_dir"]),
    Case("freeze_more_layers_than_the_model_has", lambda t: base(t, finetuning_type="freeze", freeze_trainable_layers=9),
         "ConfigError", ["freeze_trainable_layers=9", "between 1 and 2"]),
    # --- config files ----------------------------------------------------------------------------
    Case("config_file_missing", lambda t: t / "missing.yaml", "ConfigError", ["missing.yaml", "does not exist"]),
    Case("config_file_empty", lambda t: config_file(t, ""), "ConfigError", ["config.yaml", "is empty", "stage: sft"]),
    Case("config_file_not_yaml", lambda t: config_file(t, "stage: sft\ndataset: [identity\nmax_steps: 2\n"),
         "ConfigError", ["config.yaml", "not valid YAML", "line"]),
    Case("config_file_is_a_list", lambda t: config_file(t, "- stage: sft\n- dataset: identity\n"), "ConfigError",
         ["config.yaml", "list", "not a mapping", "key: value"]),
    Case("config_file_is_a_sentence", lambda t: config_file(t, "train sft on identity please\n"), "ConfigError",
         ["config.yaml", "not a mapping"]),
    Case("config_file_not_utf8", lambda t: config_file(t, "").write_bytes(b"stage: sft\ndataset: caf\xe9\n") and t / "config.yaml",
         "ConfigError", ["config.yaml", "not UTF-8", "save it as UTF-8"]),
    Case("config_path_is_a_folder", lambda t: t, "ConfigError", ["is a folder", ".yaml file"]),
    Case("stage_in_capitals", lambda t: base(t, stage="SFT"), "ConfigError", ["stage='SFT'", "did you mean 'sft'"]),
    # --- data ------------------------------------------------------------------------------------
    Case("dataset_not_registered", lambda t: base(t, dataset="identiy"), "DataError",
         ["dataset 'identiy' is not registered", "known:", "identity", "alpaca_en_demo"]),
    Case("eval_dataset_not_registered", lambda t: base(t, eval_dataset="held_out"), "DataError",
         ["dataset 'held_out' is not registered", "known:"]),
    Case("data_file_missing",
         lambda t: (write_dataset(t / "data", "mine", [ALPACA_ROW], {}).unlink(),
                    base(t, dataset="mine", dataset_dir=str(t / "data")))[1],
         "DataError", ["dataset 'mine'", "mine.json", "does not exist", "file_name"]),
    Case("data_file_invalid_json", lambda t: with_file(t, '[\n  {"instruction": "hi", "output": "hello"},\n  {oops}\n]'),
         "DataError", ["dataset 'mine'", "mine.json", "not valid JSON", "line 3"]),
    Case("jsonl_with_one_bad_line",
         lambda t: with_file(t, json.dumps(ALPACA_ROW) + "\n" + json.dumps(ALPACA_ROW) + "\n{not json\n",
                             file_name="mine.jsonl"),
         "DataError", ["dataset 'mine'", "mine.jsonl", "line 3", "not valid JSON"]),
    Case("row_missing_a_column", lambda t: with_data(t, [ALPACA_ROW, {"input": "", "output": "Hi"}]), "DataError",
         ["dataset 'mine' row 2", "missing column 'instruction'", "columns found: input, output"]),
    Case("sharegpt_row_missing_conversations",
         lambda t: with_data(t, [SHAREGPT_ROW, {"messages": []}], {"formatting": "sharegpt"}), "DataError",
         ["dataset 'mine' row 2", "missing column 'conversations'"]),
    Case("csv_missing_a_column", lambda t: with_file(t, "question,output\nhi,hello\n", file_name="mine.csv"),
         "DataError", ["dataset 'mine' row 1", "missing column 'instruction'", "question"]),
    Case("row_not_an_object", lambda t: with_data(t, [ALPACA_ROW, "just a string"]), "DataError",
         ["dataset 'mine'", "row 2", "not an object"]),
    Case("json_file_holds_a_number", lambda t: with_file(t, "42"), "DataError",
         ["dataset 'mine'", "mine.json", "JSON int", "list of rows"]),
    Case("data_file_not_utf8", lambda t: with_file(t, "instruction,output\nhi,x\n", file_name="mine.csv") and
         ((t / "data" / "mine.csv").write_bytes(b"instruction,output\ncaf\xe9,ok\n"), base(t, dataset="mine",
          dataset_dir=str(t / "data")))[1],
         "DataError", ["dataset 'mine'", "mine.csv", "not UTF-8", "save it as UTF-8"]),
    Case("parquet_file_corrupt", lambda t: with_file(t, "not parquet at all", file_name="mine.parquet"), "DataError",
         ["dataset 'mine'", "mine.parquet", "not a readable parquet file"]),
    Case("empty_dataset", lambda t: with_data(t, []), "DataError", ["dataset 'mine' has no rows", "add rows"]),
    Case("tokenized_path_names_a_file",
         lambda t: ((t / "rows.json").write_text("[]"), base(t, tokenized_path=str(t / "rows.json")))[1], "ConfigError",
         ["tokenized_path=", "rows.json", "is a file", "must be a folder"]),
    Case("tokenized_path_holds_something_else",
         lambda t: ((t / "notes").mkdir(), (t / "notes" / "a.txt").write_text("x"),
                    base(t, tokenized_path=str(t / "notes")))[2], "ConfigError",
         ["tokenized_path=", "holds something other than saved rows", "new or empty folder"]),
    Case("sharegpt_roles_out_of_order",
         lambda t: with_data(t, [SHAREGPT_ROW, {"conversations": [{"from": "gpt", "value": "Hello!"},
                                                                  {"from": "human", "value": "Hi"}]}],
                             {"formatting": "sharegpt"}),
         "DataError", ["dataset 'mine' row 2", "roles out of order", "alternate"]),
    Case("sharegpt_unknown_role",
         lambda t: with_data(t, [{"conversations": [{"from": "person", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}],
                             {"formatting": "sharegpt"}),
         "DataError", ["dataset 'mine' row 1", "unknown role 'person'", "human"]),
    Case("kto_tag_not_a_boolean",
         lambda t: with_data(t, [{**ALPACA_ROW, "kto_tag": "maybe"}] * 2, {"columns": {"kto_tag": "kto_tag"}},
                             stage="kto"),
         "DataError", ["dataset 'mine' row 1", "kto_tag must be true or false"]),
    Case("preference_row_without_rejected",
         lambda t: with_data(t, [{"instruction": "Hi", "chosen": "Hello!"}], {"ranking": True}, stage="dpo"),
         "DataError", ["dataset 'mine' row 1", "missing column 'rejected'"]),
    Case("dataset_info_not_json",
         lambda t: ((t / "data").mkdir(), (t / "data" / "dataset_info.json").write_text('{"mine": {"file_name": }'),
                    base(t, dataset="mine", dataset_dir=str(t / "data")))[2],
         "DataError", ["dataset_info.json", "not valid JSON", "line 1"]),
    Case("dataset_info_entry_not_an_object",
         lambda t: ((t / "data").mkdir(), (t / "data" / "dataset_info.json").write_text('{"mine": "mine.json"}'),
                    base(t, dataset="mine", dataset_dir=str(t / "data")))[2],
         "DataError", ["dataset_info.json", "entry 'mine'", "file_name"]),
    Case("dataset_info_columns_not_an_object",
         lambda t: with_data(t, [ALPACA_ROW], {"columns": "instruction"}), "DataError",
         ["dataset_info.json", "entry 'mine'", "columns='instruction'", "must be an object"]),
    Case("dataset_formatting_unknown", lambda t: with_data(t, [ALPACA_ROW], {"formatting": "vicuna"}), "DataError",
         ["dataset 'mine'", "formatting='vicuna'", "alpaca, sharegpt, openai"]),
    Case("val_size_leaves_no_rows", lambda t: base(t, val_size=5000), "DataError",
         ["val_size=5000", "leaves no rows"]),
    Case("hub_dataset_offline",
         lambda t: ((t / "data").mkdir(),
                    (t / "data" / "dataset_info.json").write_text('{"mine": {"hf_hub_url": "org/some_set"}}'),
                    base(t, dataset="mine", dataset_dir=str(t / "data")))[2],
         "DataError", ["dataset 'mine'", "org/some_set", "unreachable", "local file"], env=OFFLINE),
    Case("dataset_names_nothing_known", lambda t: base(t, dataset="my_rows.jsonl"), "DataError",
         ["dataset 'my_rows.jsonl'", "not registered", "nor a file or folder", "dataset_dir", "hub id"]),
    Case("columns_match_no_format",
         lambda t: with_rows_file(t, [{"question": "What colour is the sky?", "answer": "Blue."}] * 2), "DataError",
         ["mine.jsonl", "columns (question, answer) match no known format", "this stage takes",
          'closest: alpaca, with "columns": {"prompt": "question", "response": "answer"}', "dataset_info.json"]),
    Case("implicit_prompt_pair_shares_nothing",
         lambda t: with_rows_file(t, [{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
                                       "rejected": [{"role": "user", "content": "Yo"}, {"role": "assistant", "content": "Go away"}]}],
                                  stage="dpo"),
         "DataError", ["mine.jsonl", "row 1", "chosen and rejected share no turns", "give a prompt column"]),
    Case("trl_label_not_a_boolean",
         lambda t: with_rows_file(t, [{"prompt": "Hi", "completion": "Hello!", "label": "maybe"}] * 2, stage="kto"),
         "DataError", ["mine.jsonl", "row 1", "label must be true or false", "'maybe'"]),
    Case("data_file_given_by_path_is_empty", lambda t: with_rows_file(t, []), "DataError",
         ["mine.jsonl", "(a file) has no rows", "at least one"]),
    Case("parquet_from_a_dataframe_with_no_rows", empty_dataframe_file, "DataError",
         ["empty.parquet", "has no rows"]),
    Case("sft_on_a_preference_file",
         lambda t: with_rows_file(t, [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away"}] * 2), "DataError",
         ["stage='sft' needs an instruction (SFT) set", "mine.jsonl", "is a preference set",
          "the stage takes language modelling (text, or messages)", "another stage"]),
    # --- models ----------------------------------------------------------------------------------
    Case("model_path_does_not_exist", lambda t: base(t, model_name_or_path=str(t / "models" / "my-llama")),
         "ConfigError", ["model_name_or_path=", "my-llama", "tiny-random-llama"]),
    Case("model_relative_path_does_not_exist", lambda t: base(t, model_name_or_path="models/my-llama"),
         "ConfigError", ["model_name_or_path='models/my-llama'", "not a local folder", "smollm2-135m-instruct"],
         env=OFFLINE),
    Case("model_folder_without_weights",
         lambda t: base(t, model_name_or_path=model_folder(t, {"config.json": '{"model_type": "llama"}'})),
         "ConfigError", ["model_name_or_path=", "has no weights", "incomplete"]),
    Case("model_folder_without_tokenizer",
         lambda t: base(t, model_name_or_path=model_folder(t, {"config.json": '{"model_type": "llama"}',
                                                               "model.safetensors": ""}, tokenizer=False)),
         "ConfigError", ["model_name_or_path=", "no tokenizer", "tokenizer.save_pretrained"]),
    Case("model_folder_without_config",
         lambda t: base(t, model_name_or_path=model_folder(t, {"model.safetensors": ""})),
         "ConfigError", ["model_name_or_path=", "no config.json", "save_pretrained"]),
    Case("model_config_not_json",
         lambda t: base(t, model_name_or_path=model_folder(t, {"config.json": "{oops", "model.safetensors": ""})),
         "ConfigError", ["model_name_or_path=", "config.json is not valid JSON", "save_pretrained"]),
    Case("model_type_unknown",
         lambda t: base(t, model_name_or_path=model_folder(t, {"config.json": '{"model_type": "no-such-arch"}',
                                                               "model.safetensors": ""})),
         "ConfigError", ["model_name_or_path=", "model_type 'no-such-arch'", "upgrade transformers"]),
    Case("model_weights_corrupt", lambda t: base(t, model_name_or_path=broken_weights(t)), "ConfigError",
         ["model_name_or_path=", "cannot be loaded", "complete"]),
    Case("adapter_config_not_json",
         lambda t: ((t / "ad").mkdir(), (t / "ad" / "adapter_config.json").write_text("{oops"),
                    base(t, adapter_name_or_path=str(t / "ad")))[2],
         "ConfigError", ["adapter_name_or_path=", "adapter_config.json", "train it again"]),
    Case("model_path_is_an_adapter", lambda t: base(t, model_name_or_path=str(lm_adapter(t))), "ConfigError",
         ["model_name_or_path=", "LoRA adapter", "adapter_name_or_path:"]),
    Case("hub_id_while_offline", lambda t: base(t, model_name_or_path="HuggingFaceTB/SmolLM2-135M"), "ConfigError",
         ["model_name_or_path='HuggingFaceTB/SmolLM2-135M'", "unreachable", "smollm2-135m-instruct",
          "tiny-random-llama"], env=OFFLINE),
    # --- evaluation and prediction ------------------------------------------------------------------------
    Case("do_predict_without_held_out_rows", lambda t: base(t, do_predict=True, predict_with_generate=True),
         "ConfigError", ["do_predict", "eval_dataset", "val_size"]),
    Case("sft_predict_without_generate", lambda t: base(t, do_predict=True, eval_dataset="identity"), "ConfigError",
         ["do_predict", "predict_with_generate: true"]),
    Case("predict_with_generate_on_dpo", lambda t: base(t, stage="dpo", dataset="dpo_en_demo", do_eval=True,
                                                        val_size=0.1, predict_with_generate=True),
         "ConfigError", ["predict_with_generate", "sft", "do_eval"]),
    Case("nothing_to_run", lambda t: base(t, do_train=False), "ConfigError", ["do_train", "do_eval", "do_predict"]),
    Case("eval_dataset_without_answers",
         lambda t: {k: v for k, v in with_data(t, [{"instruction": "Name a fruit.", "input": "", "output": ""}],
                                               name="questions", do_predict=True, predict_with_generate=True,
                                               eval_dataset="questions").items() if k != "dataset"},
         "DataError", ["eval_dataset 'questions' row 1", "answer"]),
]


@dataclass
class Warned:
    id: str
    build: Callable[[Path], dict]
    words: list[str]


WARNINGS = [
    Warned("kto_with_batch_one",  # LLaMA-Factory's kto example: batch 1, accumulation 8
           lambda t: base(t, stage="kto", dataset="kto_en_demo", per_device_train_batch_size=1,
                          gradient_accumulation_steps=8),
           ["per_device_train_batch_size 1 -> 2", "gradient_accumulation_steps 8 -> 4"]),
    Warned("every_sft_row_longer_than_cutoff_len",  # LLaMA-Factory trains on the cut rows, and so does tunekit
           lambda t: with_data(t, [{"instruction": LONG, "input": "", "output": LONG}] * 4, cutoff_len=16),
           ["4 of 4 rows of dataset 'mine'", "longer than cutoff_len=16", "cut to fit"]),
    Warned("kto_set_with_one_class_only",
           lambda t: with_data(t, [{**ALPACA_ROW, "kto_tag": True}] * 4, {"columns": {"kto_tag": "kto_tag"}},
                               stage="kto"),
           ["dataset 'mine' has only good (true) answers", "both kinds"]),
]
