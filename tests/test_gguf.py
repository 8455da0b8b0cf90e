"""`tunekit export` with export_gguf: a GGUF file llama.cpp and Ollama read, and a Modelfile beside it.

The GGUF is read back with transformers' own GGUF loader, which undoes llama.cpp's conventions (the q/k row
order, tied heads, the tokenizer keys): what it loads must compute what the merged model computes.
Tolerances, as the largest |logit difference| over the largest |logit|: f16 storage 1e-2 (measured at most
2.1e-3 here, 3.6e-3 for the tiny qwen2/mistral, 2.7e-3 for qwen3/gemma2/gemma3/phi3), q8_0 1e-1 (measured at
most 4.2e-2 here, 3.5e-2 on SmolLM2-135M, 7.2e-2 for the tiny phi3). A wrong q/k row order is off by 0.9 to 1.5
of the scale. Whether llama.cpp itself runs the files the same way is `make check-gguf` (tools/check_gguf.py).
"""

import shutil
from pathlib import Path

import pytest
import torch

import tunekit as tk
from conftest import run_cli

F16_TOLERANCE = 1e-2
Q8_0_TOLERANCE = 1e-1
CONVERSATIONS = [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 12 + 30? Say it in words."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"},
     {"role": "user", "content": "Tell me a story about a cat."}],
]


def _tiny_folder() -> str:
    from tunekit.models import resolve_model

    return resolve_model("tiny-random-llama")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with random A and B (not the zero B of a fresh one), so that merging it
    changes every linear layer, and q/k enough that the rope's row order shows in the logits."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("adapter")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(_tiny_folder()),
                               LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(adapter, tmp_path_factory) -> Path:
    """The adapter merged and exported with export_gguf: f16."""
    from tunekit.export import export

    out = tmp_path_factory.mktemp("export") / "merged"
    return Path(export(tk.load_config({"model_name_or_path": "tiny-random-llama", "adapter_name_or_path": str(adapter),
                                       "export_dir": str(out), "export_gguf": "f16", "do_train": False})))


def _chat_ids(tokenizer, conversations=CONVERSATIONS) -> list[list[int]]:
    return [tokenizer(tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)).input_ids
            for c in conversations]


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def _max_relative_diff(folder: Path, gguf_name: str, ids_from=None, conversations=CONVERSATIONS, **config) -> float:
    """The largest |logit difference| between the HF model in ``folder`` and its GGUF, over the prompts,
    relative to the largest |logit| of the HF model (``config``: settings the GGUF loader does not read)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(folder)
    from_gguf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, **config)
    worst = 0.0
    for ids in _chat_ids(ids_from or AutoTokenizer.from_pretrained(folder), conversations):
        expected, got = _logits(merged, ids), _logits(from_gguf, ids)
        worst = max(worst, ((expected - got).abs().max() / expected.abs().max()).item())
    return worst


def _read(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    fields["tensor_types"] = {t.name: t.tensor_type.name for t in reader.tensors}
    return fields


def test_f16_gguf_computes_what_the_merged_model_computes(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert sorted(p.name for p in exported.glob("*.gguf")) == ["model-f16.gguf"]
    assert any(exported.glob("*.safetensors"))  # the merged HF model is still written, as without export_gguf
    assert _max_relative_diff(exported, "model-f16.gguf") < F16_TOLERANCE
    # the adapter is in the GGUF: its logits are far from the base model's
    base = AutoModelForCausalLM.from_pretrained(_tiny_folder())
    from_gguf = AutoModelForCausalLM.from_pretrained(exported, gguf_file="model-f16.gguf")
    ids = _chat_ids(AutoTokenizer.from_pretrained(exported))[0]
    expected = _logits(base, ids)
    assert (expected - _logits(from_gguf, ids)).abs().max() > 0.1 * expected.abs().max()


def _tokenizer_of(gguf_file: Path, folder: Path):
    """The tokenizer transformers' GGUF loader rebuilds from ``gguf_file`` alone (beside a tokenizer.json, it would
    read that instead)."""
    from transformers import AutoTokenizer

    folder.mkdir()
    shutil.copy(gguf_file, folder / gguf_file.name)
    return AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file.name)


def test_the_gguf_holds_the_tokenizer_and_its_chat_template(exported, tmp_path):
    from transformers import AutoTokenizer

    original = AutoTokenizer.from_pretrained(exported)
    from_gguf = _tokenizer_of(exported / "model-f16.gguf", tmp_path / "gguf")
    for conversation in CONVERSATIONS:
        text = original.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        assert from_gguf(text).input_ids == original(text).input_ids
        assert from_gguf(text, add_special_tokens=False).input_ids == original(text, add_special_tokens=False).input_ids
    fields = _read(exported / "model-f16.gguf")
    assert fields["general.architecture"] == "llama" and fields["general.file_type"] == 1  # MOSTLY_F16
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == [original.convert_ids_to_tokens(i) for i in range(len(original))]
    assert fields["tokenizer.ggml.token_type"][:3] == [3, 3, 3] and set(fields["tokenizer.ggml.token_type"][3:]) == {1}
    assert fields["tokenizer.ggml.eos_token_id"] == original.convert_tokens_to_ids("<|im_end|>")
    assert fields["tokenizer.ggml.add_bos_token"] is False
    template = fields["tokenizer.chat_template"]  # transformers' {% generation %} marks are left out
    assert "<|im_start|>" in template and "{% generation %}" not in template
    from jinja2 import Template

    assert Template(template).render(messages=CONVERSATIONS[0], add_generation_prompt=True) == \
        original.apply_chat_template(CONVERSATIONS[0], tokenize=False, add_generation_prompt=True)
    types = fields["tensor_types"]
    assert "output.weight" not in types  # tied to token_embd, as in the HF model
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"


def test_the_modelfile_names_the_gguf_and_has_the_chatml_template(exported):
    text = (exported / "Modelfile").read_text()
    assert "FROM ./model-f16.gguf\n" in text
    template = text.split('TEMPLATE """')[1].split('"""')[0]
    assert template == ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
                        "<|im_start|>assistant\n")
    assert 'PARAMETER stop "<|im_end|>"' in text.splitlines()
    assert "SYSTEM" not in text  # the chatml template adds no system prompt of its own


def _tokenizer_with(template: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_tiny_folder())
    tokenizer.chat_template = template
    return tokenizer


def test_a_default_system_prompt_and_a_template_tunekit_does_not_translate(tmp_path):
    from tunekit.gguf import write_modelfile
    from tunekit.templates import ALPACA

    smollm2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
               "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
               "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    text = write_modelfile(tmp_path, "model-q8_0.gguf", smollm2, _tokenizer_with(smollm2)).read_text()
    assert 'SYSTEM """You are a helpful AI assistant"""' in text and "FROM ./model-q8_0.gguf" in text

    text = write_modelfile(tmp_path, "model-f16.gguf", ALPACA, _tokenizer_with(ALPACA)).read_text()
    assert not any(line.startswith("TEMPLATE") for line in text.splitlines()) and "tokenizer.chat_template" in text
    assert 'PARAMETER stop "<|im_end|>"' in text  # the end-of-turn (eos) token still stops generation


def test_q8_0_from_the_command_line(adapter, tmp_path):
    out = tmp_path / "merged"
    proc = run_cli("export", "--adapter", adapter, "--export-dir", out, "--gguf", "q8_0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str(out / "model-q8_0.gguf") in proc.stdout and "ollama create" in proc.stdout
    assert "FROM ./model-q8_0.gguf" in (out / "Modelfile").read_text()
    fields = _read(out / "model-q8_0.gguf")
    assert fields["general.file_type"] == 7  # MOSTLY_Q8_0
    types = fields["tensor_types"]
    assert types["blk.0.attn_q.weight"] == types["token_embd.weight"] == "Q8_0" and types["output_norm.weight"] == "F32"
    assert _max_relative_diff(out, "model-q8_0.gguf") < Q8_0_TOLERANCE


def _tiny_of(kind: str, folder: Path) -> Path:
    """A tiny random model of another architecture, with the tiny model's tokenizer (qwen2: 16 embedding rows
    more than the tokenizer has tokens, as Qwen2's own checkpoints have)."""
    import transformers

    sizes = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, initializer_range=0.2)  # large weights: attention is not flat
    configs = {"qwen2": transformers.Qwen2Config(**{**sizes, "vocab_size": 1040}, tie_word_embeddings=False),
               "mistral": transformers.MistralConfig(**sizes, tie_word_embeddings=True),
               "gpt2": transformers.GPT2Config(vocab_size=1024, n_embd=32, n_layer=1, n_head=2)}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(configs[kind])
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (Path(_tiny_folder()) / name).is_file():
            shutil.copy(Path(_tiny_folder()) / name, folder / name)
    return folder


@pytest.mark.parametrize("kind", ["qwen2", "mistral"])
def test_qwen2_and_mistral_full_models_need_no_adapter(kind, tmp_path):
    from transformers import AutoTokenizer

    from tunekit.export import export

    base = _tiny_of(kind, tmp_path / kind)
    out = Path(export(tk.load_config({"model_name_or_path": str(base), "export_dir": str(tmp_path / "out"),
                                      "export_gguf": "f16", "do_train": False})))
    fields = _read(out / "model-f16.gguf")
    assert fields["general.architecture"] == {"qwen2": "qwen2", "mistral": "llama"}[kind]
    if kind == "qwen2":  # its q/k/v biases are written, its own output head, and a token per embedding row
        assert {"blk.0.attn_q.bias", "output.weight"} <= set(fields["tensor_types"])
        assert len(fields["tokenizer.ggml.tokens"]) == 1040 and fields["tokenizer.ggml.tokens"][-1] == "[PAD1039]"
        assert fields["tokenizer.ggml.token_type"][-1] == 5  # UNUSED
    # transformers reads a qwen2 GGUF's vocabulary as Qwen2's tokenizer: the ids come from the original one
    assert _max_relative_diff(out, "model-f16.gguf", ids_from=AutoTokenizer.from_pretrained(base)) < F16_TOLERANCE


def test_unsupported_models_are_one_line_errors_before_anything_is_written(tmp_path):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from tunekit.export import export

    gpt2 = _tiny_of("gpt2", tmp_path / "gpt2")
    out = tmp_path / "out"
    with pytest.raises(tk.ConfigError) as err:
        export(tk.load_config({"model_name_or_path": str(gpt2), "export_dir": str(out), "export_gguf": "f16",
                               "do_train": False}))
    message = str(err.value)
    assert "\n" not in message and "model_type 'gpt2'" in message and "llama, mistral, qwen2" in message
    assert "without export_gguf" in message and not out.exists()

    reward = tmp_path / "rm"  # a reward model's adapter: a sequence-classification head, no language model
    model = AutoModelForSequenceClassification.from_pretrained(_tiny_folder(), num_labels=1)
    get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, target_modules="all-linear")).save_pretrained(reward)
    with pytest.raises(tk.ConfigError, match="reward model") as err:
        export(tk.load_config({"model_name_or_path": "tiny-random-llama", "adapter_name_or_path": str(reward),
                               "export_dir": str(out), "export_gguf": "q8_0", "do_train": False}))
    assert "\n" not in str(err.value) and not out.exists()

    with pytest.raises(tk.ConfigError, match="adapter_name_or_path is not set.*export_gguf"):
        export(tk.load_config({"model_name_or_path": "tiny-random-llama", "export_dir": str(out), "do_train": False}))


def test_export_gguf_takes_f16_or_q8_0(tmp_path):
    with pytest.raises(tk.ConfigError, match=r"export_gguf='q4_k' is not one of: f16, q8_0"):
        tk.load_config({"export_gguf": "q4_k", "do_train": False})
    with pytest.raises(tk.ConfigError, match="did you mean 'q8_0'"):
        tk.load_config({"export_gguf": "Q8_0", "do_train": False})
    proc = run_cli("export", "--model", "tiny-random-llama", "--export-dir", tmp_path / "out", "--gguf", "q4")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "export_gguf='q4'" in proc.stderr and "f16, q8_0" in proc.stderr
    assert tk.load_config({"export_gguf": "q8_0", "do_train": False}).export_gguf == "q8_0"


def _not_read_back(config) -> dict:
    """What transformers' GGUF loader does not read from the file, keeping its config class's default instead:
    Qwen3's head_dim (128), and Gemma's query_pre_attn_scalar (256), where llama.cpp (and so the file) scales
    queries by 1/sqrt(head_dim)."""
    if config.model_type == "qwen3":
        return {"head_dim": config.head_dim}
    if config.model_type in ("gemma2", "gemma3_text"):
        return {"query_pre_attn_scalar": config.head_dim}
    return {}


NEW_FAMILIES = {  # tests/families.py's name: (llama.cpp architecture, tensors it has, the Modelfile's chat format)
    "qwen3": ("qwen3", {"blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight"}, None),  # <think>: left to Ollama
    "gemma2": ("gemma2", {"blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight"}, "Gemma"),
    "gemma3": ("gemma3", {"blk.1.attn_q_norm.weight", "blk.1.post_ffw_norm.weight"}, "Gemma"),
    "phi3": ("phi3", {"blk.0.attn_qkv.weight", "blk.0.ffn_up.weight"}, "Phi-3"),
}


@pytest.mark.parametrize("family", list(NEW_FAMILIES))
def test_qwen3_gemma_and_phi3_compute_what_the_model_computes(family, tmp_path):
    from families import tiny_model, with_large_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tunekit.export import export
    from tunekit.gguf import write_gguf

    base = with_large_weights(tiny_model(family, tmp_path / family))
    out = Path(export(tk.load_config({"model_name_or_path": str(base), "export_dir": str(tmp_path / "out"),
                                      "export_gguf": "f16", "do_train": False})))
    tokenizer = AutoTokenizer.from_pretrained(base)
    write_gguf(AutoModelForCausalLM.from_pretrained(out), tokenizer, out, "q8_0")
    architecture, tensors, chat_format = NEW_FAMILIES[family]
    fields = _read(out / "model-f16.gguf")
    assert fields["general.architecture"] == architecture and tensors <= set(fields["tensor_types"])
    assert "output.weight" not in fields["tensor_types"]  # tied, as tiny_model's models are
    conversations = [c for c in CONVERSATIONS if family != "gemma2" or c[0]["role"] != "system"]  # Gemma 2 has none
    config = AutoConfig.from_pretrained(base)
    for kind, tolerance in (("f16", F16_TOLERANCE), ("q8_0", Q8_0_TOLERANCE)):
        assert _max_relative_diff(out, f"model-{kind}.gguf", tokenizer, conversations,
                                  **_not_read_back(config)) < tolerance, kind
    if family.startswith("gemma"):  # the query scale is in the file (llama.cpp's 1/sqrt(head_dim)), and it shows
        assert _max_relative_diff(out, "model-f16.gguf", tokenizer, conversations[:1]) > 10 * F16_TOLERANCE
        assert fields[f"{architecture}.attention.sliding_window"] == 64
        assert f"{architecture}.attention.sliding_window_pattern" not in fields  # llama.cpp's default pattern
    if family == "gemma2":
        assert fields["gemma2.attn_logit_softcapping"] == 50.0 and fields["gemma2.final_logit_softcapping"] == 30.0
    if family == "gemma3":
        assert fields["gemma3.rope.freq_base"] == 1e6 and fields["gemma3.rope.freq_base_swa"] == 1e4
    modelfile = (out / "Modelfile").read_text()
    assert (f"# Chat format: {chat_format}," in modelfile) == bool(chat_format)
    assert f'PARAMETER stop "{tokenizer.eos_token}"' in modelfile.splitlines()


def test_the_gemma_and_phi3_modelfile_templates():
    from tunekit.gguf import _FAMILIES

    gemma, phi3 = _FAMILIES["Gemma"], _FAMILIES["Phi-3"]
    # rendered by Go's text/template for a system turn, a user turn, an answer and a user turn, they give what
    # trl's gemma3 and phi3 jinja templates give (checked once with go 1.19; no Go here at test time)
    assert gemma.template.endswith("<start_of_turn>model\n") and '$system = ""' in gemma.template
    assert phi3.template == "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n"
    assert gemma.stops == ("<start_of_turn>", "<end_of_turn>") and phi3.stops[0] == "<|end|>"


def test_what_llama_cpp_cannot_compute_is_a_one_line_error():
    import transformers

    from tunekit.gguf import check_exportable

    sizes = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    long_rope = transformers.Phi3Config(**sizes, max_position_embeddings=8192, rope_parameters={
        "rope_type": "longrope", "rope_theta": 10000.0, "long_factor": [1.0] * 8, "short_factor": [1.0] * 8,
        "original_max_position_embeddings": 4096})
    uncapped = transformers.Gemma2Config(**sizes, final_logit_softcapping=None)
    multimodal = transformers.Gemma3Config()
    for config, says in ((long_rope, "rope_type 'longrope'"), (uncapped, "always caps"),
                         (multimodal, "gemma3_text")):
        with pytest.raises(tk.ConfigError) as err:
            check_exportable(config, "f16")
        assert says in str(err.value) and "\n" not in str(err.value) and "convert_hf_to_gguf" in str(err.value)
    scaled = transformers.Gemma3TextConfig(**sizes, rope_parameters={  # Gemma 3 4B+: linear on the full layers
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    assert check_exportable(scaled, "f16").name == "GEMMA3"


SENTENCEPIECE = {"gemma2": False, "mistral": True, "phi3": False}  # families.py's family: its add_space_prefix


@pytest.mark.parametrize("family", list(SENTENCEPIECE))
def test_a_sentencepiece_tokenizer_is_llama_cpps_llama_vocabulary(family, tmp_path):
    """Gemma's (no space prefix), Mistral 7B's (legacy: a space prefix after every special token) and Phi-3-mini's
    (its chat tokens strip the newline after them) tokenizers: BPE with byte fallback over ▁-words."""
    from families import sentencepiece_model, with_large_weights
    from transformers import AutoConfig, AutoTokenizer

    from tunekit.export import export

    base = with_large_weights(sentencepiece_model(family, tmp_path / family))
    keys = {"template": "mistral"} if family == "mistral" else {}  # tunekit's: [INST] turns, [INST] as text
    out = Path(export(tk.load_config({"model_name_or_path": str(base), "export_dir": str(tmp_path / "out"),
                                      "export_gguf": "f16", "do_train": False, **keys})))
    original = AutoTokenizer.from_pretrained(out)
    fields = _read(out / "model-f16.gguf")
    tokens, types = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    assert fields["tokenizer.ggml.model"] == "llama" and fields["tokenizer.ggml.pre"] == "default"
    assert tokens == [original.convert_ids_to_tokens(i) for i in range(len(original))]
    special = set(original.all_special_ids) | {i for i, t in original.added_tokens_decoder.items() if t.special}
    kinds = {"<0x0A>": 6, original.unk_token: 2, original.bos_token: 3, original.eos_token: 3}  # BYTE, UNKNOWN, CONTROL
    assert {token: types[tokens.index(token)] for token in kinds} == kinds
    assert {types[i] for i, token in enumerate(tokens) if i not in special and not token.startswith("<0x")} == {1}
    # llama.cpp merges the pair that makes the token of highest score: the tokens come in the merges' order
    scores = fields["tokenizer.ggml.scores"]
    made = dict.fromkeys(merge.replace(" ", "") for merge in fields["tokenizer.ggml.merges"])
    ordered = [scores[tokens.index(token)] for token in made]
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) == len(ordered) > 500
    assert fields["tokenizer.ggml.add_space_prefix"] is SENTENCEPIECE[family]
    assert fields["tokenizer.ggml.add_bos_token"] is True and fields["tokenizer.ggml.add_eos_token"] is False
    assert ("phi-3" in fields["general.name"]) == (family == "phi3")  # llama.cpp strips after Phi-3's chat tokens
    conversations = [c for c in CONVERSATIONS if family != "gemma2" or c[0]["role"] != "system"]
    # transformers' GGUF loader rebuilds Gemma's tokenizer as a Unigram from the scores and Llama's as BPE from
    # the merges; its Phi-3 one writes no ▁ for spaces (llama.cpp's own tokens: make check-gguf)
    if family != "phi3":
        from_gguf = _tokenizer_of(out / "model-f16.gguf", tmp_path / "gguf")
        for conversation in conversations:  # the loader adds no bos: llama.cpp does, as add_bos_token says
            text = original.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
            assert from_gguf(text, add_special_tokens=False).input_ids == original(text,
                                                                                 add_special_tokens=False).input_ids
    config = AutoConfig.from_pretrained(base)
    assert _max_relative_diff(out, "model-f16.gguf", original, conversations,
                              **_not_read_back(config)) < F16_TOLERANCE


def test_a_tokenizer_llama_cpp_cannot_read_is_a_one_line_error_and_other_merges_a_warning(tmp_path):
    import json

    import gguf
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tunekit.gguf import _write_tokenizer
    from tunekit.models.builtin import _tiny_corpus

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.Replace(" ", "\u2581")
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    bpe.train_from_iterator(_tiny_corpus(), trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>"],
                                                                show_progress=False))
    trained = json.loads(bpe.to_str())["model"]

    def tokenizer(byte_fallback: bool, byte_tokens: bool = True):  # its merges as trained, not a SentencePiece's
        vocab = {**trained["vocab"], **{f"<0x{b:02X}>": len(trained["vocab"]) + b for b in range(256 * byte_tokens)}}
        bpe.model = models.BPE(vocab, [tuple(m) for m in trained["merges"]], byte_fallback=byte_fallback,
                               unk_token="<unk>")
        return PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>")

    writer = gguf.GGUFWriter(tmp_path / "x.gguf", "llama")
    for wrong, says in ((tokenizer(byte_fallback=False), "neither byte-level BPE"),
                        (tokenizer(byte_fallback=True, byte_tokens=False), "256 of the 256 byte tokens")):
        with pytest.raises(tk.ConfigError) as err:
            _write_tokenizer(writer, wrong, 1024, "f16")
        assert "\n" not in str(err.value) and says in str(err.value) and "convert_hf_to_gguf" in str(err.value)
    with pytest.warns(UserWarning, match="merges are not a SentencePiece model's"):
        _write_tokenizer(writer, tokenizer(byte_fallback=True), 1024, "f16")
