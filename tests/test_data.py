"""Data: formats convert to one canonical conversation; labels mask exactly what should not train."""

import json

import pytest

import tunekit as tk
from conftest import ROOT, write_dataset
from tunekit.data import IGNORE_INDEX, encode_chat

SINGLE = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5."}]
MULTI = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
    {"role": "assistant", "content": "Green, then red."},
]


@pytest.fixture(scope="module")
def tokenizer():
    return tk.load_tokenizer("tiny-random-llama")


def _assistant_mask(tokenizer, messages):
    """transformers' own view of which tokens the assistant says ({% generation %} in the template)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    return out["input_ids"], out["assistant_masks"]


@pytest.mark.parametrize("messages", [SINGLE, MULTI], ids=["single-turn", "multi-turn"])
def test_labels_are_the_ids_on_assistant_tokens_and_minus_100_elsewhere(tokenizer, messages):
    ids, mask = _assistant_mask(tokenizer, messages)
    row = encode_chat(tokenizer, messages, cutoff_len=1024)
    assert row["input_ids"] == ids
    assert row["attention_mask"] == [1] * len(ids)
    assert sum(mask) > 0
    assert row["labels"] == [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]


def test_train_on_prompt_trains_every_token(tokenizer):
    row = encode_chat(tokenizer, MULTI, cutoff_len=1024, train_on_prompt=True)
    assert row["labels"] == row["input_ids"]


def test_mask_history_trains_only_the_last_answer(tokenizer):
    ids, mask = _assistant_mask(tokenizer, MULTI)
    row = encode_chat(tokenizer, MULTI, cutoff_len=1024, mask_history=True)
    trained = [t for t in row["labels"] if t != IGNORE_INDEX]
    last = tokenizer("Green, then red.<|im_end|>\n", add_special_tokens=False)["input_ids"]
    assert trained == last
    assert row["input_ids"] == ids  # the history is still seen, only not trained on


def test_cutoff_len_keeps_part_of_a_long_answer(tokenizer):
    long = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "answer " * 200}]
    row = encode_chat(tokenizer, long, cutoff_len=64)
    assert len(row["input_ids"]) <= 64
    trained = sum(label != IGNORE_INDEX for label in row["labels"])
    assert trained >= 16  # the answer is cut, not cut away


ALPACA = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "system": "Be exact."}
SHAREGPT = {"conversations": [{"from": "human", "value": "Add the numbers.\n2 and 3"}, {"from": "gpt", "value": "5"}],
            "system": "Be exact."}
OPENAI = {"messages": [{"role": "system", "content": "Be exact."},
                       {"role": "user", "content": "Add the numbers.\n2 and 3"},
                       {"role": "assistant", "content": "5"}]}


def test_alpaca_sharegpt_and_openai_give_the_same_conversation(tmp_path):
    folder = tmp_path / "data"
    write_dataset(folder, "a", [ALPACA], {"columns": {"system": "system"}})
    write_dataset(folder, "s", [SHAREGPT], {"formatting": "sharegpt", "columns": {"messages": "conversations",
                                                                                   "system": "system"}})
    write_dataset(folder, "o", [OPENAI], {"formatting": "openai", "columns": {"messages": "messages"}}, ".jsonl")
    rows = [tk.load_rows(tk.load_config({"dataset": name, "dataset_dir": str(folder)}), "chat")["train"][0]
            for name in "aso"]
    assert rows[0] == rows[1] == rows[2] == {"messages": OPENAI["messages"]}


def test_csv_and_parquet_files_are_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "t.csv").write_text("instruction,input,output\nSay hi,,hi\n")
    pq.write_table(pa.Table.from_pylist([{"instruction": "Say hi", "input": "", "output": "hi"}]), folder / "t.parquet")
    (folder / "dataset_info.json").write_text(json.dumps({"c": {"file_name": "t.csv"}, "p": {"file_name": "t.parquet"}}))
    for name in "cp":
        row = tk.load_rows(tk.load_config({"dataset": name, "dataset_dir": str(folder)}), "chat")["train"][0]
        assert row["messages"] == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]


def test_identity_placeholders_are_filled_from_the_config():
    cfg = tk.load_config({"dataset": "identity", "identity_name": "Quokka", "identity_author": "Team Q"})
    rows = tk.load_rows(cfg, "chat")["train"]
    answers = [m["content"] for row in rows for m in row["messages"] if m["role"] == "assistant"]
    assert len(answers) >= 60
    assert all("Quokka" in a for a in answers) and any("Team Q" in a for a in answers)
    assert not any("{{" in a for a in answers)


def test_bundled_sets_have_their_promised_size():
    sizes = {"c4_demo": ("text", 300), "alpaca_en_demo": ("chat", 300), "identity": ("chat", 60),
             "dpo_en_demo": ("pairwise", 300), "kto_en_demo": ("unpaired", 300)}
    for name, (kind, least) in sizes.items():
        rows = tk.load_rows(tk.load_config({"dataset": name}), kind)["train"]
        assert len(rows) >= least, name
    alpaca = tk.load_rows(tk.load_config({"dataset": "alpaca_en_demo"}), "chat")["train"]
    assert sum("\n" in r["messages"][0]["content"] for r in alpaca) > 50  # rows with an input
    kto = tk.load_rows(tk.load_config({"dataset": "kto_en_demo"}), "unpaired")["train"]
    assert abs(sum(kto["label"]) - len(kto) / 2) <= len(kto) * 0.05


def test_max_samples_and_val_size(tiny):
    cfg = tk.load_config({**tiny, "dataset": "identity,alpaca_en_demo", "max_samples": 20, "val_size": 0.25})
    rows = tk.load_rows(cfg, "chat")
    assert len(rows["train"]) == 30 and len(rows["eval"]) == 10
    data = tk.load_data(cfg, tk.load_tokenizer(cfg))
    assert set(data) == {"train", "eval"}
    assert set(data["train"].column_names) == {"input_ids", "attention_mask", "labels"}


def test_pt_packs_text_into_cutoff_len_blocks_with_every_token_trained(tiny, tokenizer):
    cfg = tk.load_config({**tiny, "stage": "pt", "dataset": "c4_demo", "cutoff_len": 64, "max_samples": 30})
    data = tk.load_data(cfg, tokenizer)["train"]
    lengths = [len(ids) for ids in data["input_ids"]]
    assert all(n == 64 for n in lengths[:-1]) and lengths[-1] <= 64
    assert all(row["labels"] == row["input_ids"] for row in data)
    eos = sum(ids.count(tokenizer.eos_token_id) for ids in data["input_ids"])
    assert eos == 30  # one EOS closes each document
    unpacked = tk.load_data(tk.load_config({**tiny, "stage": "pt", "dataset": "c4_demo", "cutoff_len": 64,
                                            "max_samples": 30, "packing": False}), tokenizer)["train"]
    assert len(unpacked) == 30


def test_sft_packing_joins_whole_conversations(tiny, tokenizer):
    cfg = tk.load_config({**tiny, "packing": True, "cutoff_len": 256})
    packed = tk.load_data(cfg, tokenizer)["train"]
    plain = tk.load_data(tk.load_config({**tiny, "cutoff_len": 256, "packing": False}), tokenizer)["train"]
    assert len(packed) < len(plain)
    assert all(len(ids) <= 256 for ids in packed["input_ids"])
    assert sum(map(len, packed["input_ids"])) == sum(map(len, plain["input_ids"]))
    assert "attention_mask" not in packed.column_names  # the mask comes from position_ids, one block per row
    for ids, positions in zip(packed["input_ids"], packed["position_ids"]):
        starts = [i for i, p in enumerate(positions) if p == 0]
        assert starts[0] == 0 and len(starts) >= 1 and len(positions) == len(ids)


def test_packed_rows_attend_only_within_themselves_and_give_the_unpacked_loss(tiny, tokenizer):
    import torch
    from tunekit.stages.base import PadCollator

    model, _ = tk.load_model({**tiny, "finetuning_type": "full"})
    model.eval()
    cfg = tk.load_config({**tiny, "max_samples": 6, "train_on_prompt": True})  # every token trained: a hard case
    plain = tk.load_data(cfg, tokenizer)["train"]
    packed = tk.load_data(tk.load_config({**tiny, "max_samples": 6, "train_on_prompt": True, "packing": True,
                                          "cutoff_len": 1024}), tokenizer)["train"]
    assert len(packed) == 1  # six conversations in one sequence

    def token_losses(batch):
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
        return losses[labels != -100]

    collate = PadCollator(tokenizer.pad_token_id)
    separate = torch.cat([token_losses(collate([row])) for row in plain])
    together = token_losses(collate(list(packed)))
    assert together.numel() == separate.numel()  # no token is trained across a boundary
    assert together.sum().item() == pytest.approx(separate.sum().item(), rel=1e-5)  # nor sees the row before it


def test_a_packed_sft_step_has_the_loss_of_the_same_rows_unpacked(tiny):
    config = {**tiny, "max_samples": 8, "per_device_train_batch_size": 8, "max_steps": 1, "cutoff_len": 512}
    plain = tk.train({**config, "packing": False, "output_dir": tiny["output_dir"] + "-plain"})
    packed = tk.train({**config, "packing": True})
    first = lambda result: next(r["loss"] for r in tk.read_log(result.log_path) if "loss" in r)  # noqa: E731
    assert first(packed) == pytest.approx(first(plain), rel=1e-5)


@pytest.mark.parametrize("stage,dataset,words", [
    ("sft", "dpo_en_demo", ["stage='sft'", "dpo_en_demo", "preference"]),
    ("sft", "no_such_set", ["no_such_set", "identity", "alpaca_en_demo"]),
])
def test_data_errors_name_the_set_and_the_fix(tiny, tokenizer, stage, dataset, words):
    with pytest.raises(tk.DataError) as err:
        tk.load_data(tk.load_config({**tiny, "stage": stage, "dataset": dataset}), tokenizer)
    for word in words:
        assert word in str(err.value)


def test_bad_rows_are_named(tmp_path):
    folder = tmp_path / "data"
    write_dataset(folder, "order", [{"conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "x"}]}],
                  {"formatting": "sharegpt"})
    write_dataset(folder, "missing", [{"instruction": "a", "output": "b"}, {"output": "c"}], {})
    (folder / "broken.json").write_text('[{"instruction": "a",\n "output": }]')
    info = json.loads((folder / "dataset_info.json").read_text())
    info["broken"] = {"file_name": "broken.json"}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    for name, words in (("order", ["row 1", "out of order"]), ("missing", ["row 2", "instruction"]),
                        ("broken", ["broken.json", "line 2"])):
        with pytest.raises(tk.DataError) as err:
            tk.load_rows(tk.load_config({"dataset": name, "dataset_dir": str(folder)}), "chat")
        for word in words:
            assert word in str(err.value)


def test_alpaca_ranking_and_sharegpt_preference_rows_agree(tmp_path):
    folder = tmp_path / "data"
    write_dataset(folder, "a", [{"instruction": "Pick", "input": "a or b", "chosen": "a", "rejected": "b"}],
                  {"ranking": True, "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                                "rejected": "rejected"}})
    write_dataset(folder, "s", [{"conversations": [{"from": "human", "value": "Pick\na or b"}],
                                 "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}],
                  {"formatting": "sharegpt", "ranking": True,
                   "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}})
    rows = [tk.load_rows(tk.load_config({"stage": "dpo", "dataset": n, "dataset_dir": str(folder)}), "pairwise")
            ["train"][0] for n in "as"]
    assert rows[0] == rows[1] == {"prompt": [{"role": "user", "content": "Pick\na or b"}],
                                  "chosen": [{"role": "assistant", "content": "a"}],
                                  "rejected": [{"role": "assistant", "content": "b"}]}


@pytest.mark.parametrize("stage", ["rm", "dpo", "kto"])
def test_preference_stages_refuse_an_sft_set(tiny, stage):
    with pytest.raises(tk.DataError, match="identity"):
        tk.load_data(tk.load_config({**tiny, "stage": stage, "dataset": "identity"}), None)


def test_a_llamafactory_registry_with_hub_only_entries_still_serves_its_files(tmp_path):
    folder = tmp_path / "data"
    write_dataset(folder, "mine", [ALPACA], {})
    info = json.loads((folder / "dataset_info.json").read_text())
    info.update({"belle_2m": {"ms_hub_url": "AI-ModelScope/train_2M_CN"},
                 "odd": {"file_name": "mine.json", "formatting": "markdown"}})
    (folder / "dataset_info.json").write_text(json.dumps(info))
    rows = tk.load_rows(tk.load_config({"dataset": "mine", "dataset_dir": str(folder)}), "chat")["train"]
    assert len(rows) == 1
    with pytest.raises(tk.DataError, match="belle_2m.*ms_hub_url"):
        tk.load_rows(tk.load_config({"dataset": "belle_2m", "dataset_dir": str(folder)}), "chat")
    with pytest.raises(tk.DataError, match="formatting='markdown'"):
        tk.load_rows(tk.load_config({"dataset": "odd", "dataset_dir": str(folder)}), "chat")


def test_the_bundled_demo_sets_pass_their_checker_and_regenerate_identically(tmp_path):
    """tools/demo_data/ (tools of the repository, not of the package) re-derives every computed answer, and the
    generator, being seeded, writes exactly the files that are bundled."""
    import subprocess
    import sys

    tools = ROOT / "tools" / "demo_data"
    proc = subprocess.run([sys.executable, str(tools / "check.py")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
    code = f"import sys; sys.path.insert(0, {str(tools)!r}); import generate; generate.main(__import__('pathlib').Path({str(tmp_path)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    bundled = ROOT / "tunekit" / "data" / "demo"
    for made in sorted(tmp_path.iterdir()):
        assert made.read_bytes() == (bundled / made.name).read_bytes(), made.name
    assert not list((ROOT / "tunekit").rglob("generate.py")) and not list((ROOT / "tunekit").rglob("check.py"))
