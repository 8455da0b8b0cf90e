"""A merged causal LM and its tokenizer as one GGUF file (llama.cpp, Ollama), with an Ollama ``Modelfile`` beside it.

``tunekit export`` with ``export_gguf: f16 | q8_0`` (CLI: ``--gguf``) saves the merged model to ``export_dir``
as always, then writes, in the same folder:

- ``model-f16.gguf`` or ``model-q8_0.gguf``: weights, hyper-parameters and tokenizer. Matrices are float16
  (``f16``) or llama.cpp's Q8_0 blocks of 32 (``q8_0``; a matrix whose rows are not a multiple of 32 stays
  float16); vectors (norms, biases) stay float32, as llama.cpp's ``convert_hf_to_gguf.py`` writes them.
- ``Modelfile``: ``FROM ./model-<type>.gguf``, the chat template in Ollama's Go syntax (ChatML or Llama 3,
  told from the tokenizer's jinja template; the jinja's default system prompt becomes ``SYSTEM``) and a
  ``PARAMETER stop`` line per end-of-turn token. Another template family gets no ``TEMPLATE``: Ollama then
  picks one from the GGUF's ``tokenizer.chat_template``, which is always written.

Supported: ``model_type`` llama (SmolLM2, TinyLlama, the tiny test model, ...), mistral (written as llama, as
llama.cpp does) and qwen2, with the default rope (no rope scaling), and a byte-level BPE tokenizer
(``tokenizer.ggml.model = "gpt2"``). Anything else is a one-line ``ConfigError``: the architecture, a reward
model's head and rope scaling before anything is loaded (``check_exportable``), the tokenizer before the GGUF
is written. A template with thinking blocks (``<think>``) is left to Ollama, as an unknown family is.

Facts the file format rests on:
- llama.cpp's ``llama`` rotates adjacent pairs of a head's dimensions, transformers' Llama its two halves; so
  q_proj and k_proj rows (and biases) are reordered per head, row ``half * d/2 + i`` to row ``2 * i + half``
  (llama.cpp's converter does the same, and transformers' GGUF loader undoes it). ``qwen2`` rotates halves in
  llama.cpp too: its rows are written as they are.
- A tied output head is not written (llama.cpp and transformers then use ``token_embd`` for it).
- The tokenizer is written as llama.cpp reads it: every token by id (added tokens included; special ones
  CONTROL, others USER_DEFINED; ids past the tokenizer up to the embedding size ``[PAD<id>]``, UNUSED), the
  BPE merges, the bos/eos/pad/unk ids, whether a bos/eos is added, and ``tokenizer.ggml.pre`` naming the
  pre-tokenizer where it is one llama.cpp has (gpt-2, smollm, qwen2, llama-bpe).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from .config import GGUF_TYPES, not_one_of
from .errors import ConfigError, warn

# transformers' model_type -> (llama.cpp architecture, q/k rows reordered from halves to adjacent pairs)
ARCHITECTURES: dict[str, tuple[gguf.MODEL_ARCH, bool]] = {
    "llama": (gguf.MODEL_ARCH.LLAMA, True),
    "mistral": (gguf.MODEL_ARCH.LLAMA, True),
    "qwen2": (gguf.MODEL_ARCH.QWEN2, False),
}
_FIX = "export without export_gguf and convert the merged folder with llama.cpp's convert_hf_to_gguf.py"
_FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
# The pre-tokenizers of tokenizer.json that llama.cpp has under a name (its llama-vocab.cpp): the pre-split
# regex decides which text pieces BPE sees, so a wrong name tokenizes differently.
_GPT2_SPLIT = {"type": "ByteLevel", "use_regex": True}
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")
_LLAMA3_REGEX = _QWEN2_REGEX.replace(r"|\p{N}|", r"|\p{N}{1,3}|")


def gguf_file_name(kind: str) -> str:
    """``model-f16.gguf`` or ``model-q8_0.gguf``: the file ``write_gguf`` writes for ``export_gguf: kind``."""
    return f"model-{kind}.gguf"


def check_exportable(config, kind: str, adapter_task: str | None = None) -> gguf.MODEL_ARCH:
    """The llama.cpp architecture for a transformers ``config``, or a one-line ``ConfigError`` naming what is
    supported; ``adapter_task`` is the LoRA adapter's peft ``task_type`` (``SEQ_CLS``: a reward model)."""
    head = adapter_task == "SEQ_CLS" or any(a.endswith("ForSequenceClassification")
                                            for a in getattr(config, "architectures", None) or [])
    model_type = getattr(config, "model_type", None)
    supported = f"supported: causal LMs of model_type {', '.join(ARCHITECTURES)}"
    if head:
        raise ConfigError(f"export_gguf={kind!r}: this is a reward model (a sequence-classification head), not a "
                          f"language model llama.cpp can run ({supported}); {_FIX}")
    if model_type not in ARCHITECTURES:
        raise ConfigError(f"export_gguf={kind!r}: model_type {model_type!r} is not one tunekit writes as GGUF "
                          f"({supported}); {_FIX}")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ConfigError(f"export_gguf={kind!r}: rope_type {rope_type!r} (rope scaling) is not written by tunekit's "
                          f"GGUF export, only the default rope; {_FIX}")
    return ARCHITECTURES[model_type][0]


def write_gguf(model, tokenizer, folder: str | Path, kind: str) -> Path:
    """Write ``folder/model-<kind>.gguf`` (``kind``: f16 | q8_0) and ``folder/Modelfile`` for a merged
    transformers causal LM and its tokenizer; returns the GGUF file's path."""
    if kind not in GGUF_TYPES:
        raise not_one_of("export_gguf", kind, GGUF_TYPES)
    config = model.config
    arch = check_exportable(config, kind)
    interleave = ARCHITECTURES[config.model_type][1]
    path = Path(folder) / gguf_file_name(kind)
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch], use_temp_file=True)  # converted tensors wait on disk
    _write_hyperparameters(writer, config, kind, name=Path(folder).name)
    chat_template = _write_tokenizer(writer, tokenizer, config.vocab_size, kind)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for key, tensor in model.state_dict().items():
        if tied and key == "lm_head.weight":
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConfigError(f"export_gguf={kind!r}: the model's tensor {key!r} has no GGUF name for "
                              f"{config.model_type}; {_FIX}")
        data = tensor.detach().float().cpu().numpy()
        if interleave and ".attn_q." in name:
            data = _pairs_from_halves(data, n_head)
        elif interleave and ".attn_k." in name:
            data = _pairs_from_halves(data, n_kv)
        data, qtype = _encode(data, kind)
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    write_modelfile(folder, path.name, chat_template, tokenizer)
    return path


def _pairs_from_halves(data: np.ndarray, n_head: int) -> np.ndarray:
    """q/k rows of each head from transformers' order (two halves rotated together) to llama.cpp's (pairs)."""
    half = data.shape[0] // n_head // 2
    return data.reshape(n_head, 2, half, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)


def _encode(data: np.ndarray, kind: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType | None]:
    """A tensor in its stored form: vectors float32, matrices float16 or Q8_0 (rows a multiple of 32)."""
    if data.ndim <= 1:
        return data.astype(np.float32), None
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
    if kind == "q8_0" and data.shape[-1] % block == 0:
        q8 = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data, q8), q8
    return data.astype(np.float16), None


def _write_hyperparameters(writer: gguf.GGUFWriter, config, kind: str, name: str) -> None:
    """The keys llama.cpp sizes the model from, and transformers' GGUF loader rebuilds the config from."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[kind])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    if head_dim != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def _pre_steps(spec: dict | None) -> list[dict]:
    """The steps of a tokenizer.json pre-tokenizer (a ``Sequence`` or a single one)."""
    spec = spec or {}
    return [s for s in (spec.get("pretokenizers") or []) if s] if spec.get("type") == "Sequence" else [spec]


def _pre_tokenizer(steps: list[dict]) -> str | None:
    """llama.cpp's name for the pre-tokenizer with these steps, or None where it has none."""
    if len(steps) == 1 and _GPT2_SPLIT.items() <= steps[0].items():
        return "gpt-2"
    if (len(steps) == 2 and steps[0].get("type") == "Digits" and steps[0].get("individual_digits")
            and _GPT2_SPLIT.items() <= steps[1].items()):
        return "smollm"
    if len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == "ByteLevel":
        regex = (steps[0].get("pattern") or {}).get("Regex")
        return {_QWEN2_REGEX: "qwen2", _LLAMA3_REGEX: "llama-bpe"}.get(regex)
    return None


def _adds(tokenizer, token_id: int | None, first: bool) -> bool:
    """Whether the tokenizer puts ``token_id`` first (bos) or last (eos) when it encodes a text."""
    with_special = tokenizer("a").input_ids
    plain = tokenizer("a", add_special_tokens=False).input_ids
    edge = with_special[0] if first else with_special[-1]
    return token_id is not None and with_special != plain and edge == token_id


def _write_tokenizer(writer: gguf.GGUFWriter, tokenizer, n_embed: int, kind: str) -> str | None:
    """Vocabulary, merges, special ids and chat template; returns the chat template written (or None)."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    steps = _pre_steps(spec.get("pre_tokenizer"))
    if spec["model"].get("type") != "BPE" or not any(step.get("type") == "ByteLevel" for step in steps):
        raise ConfigError(f"export_gguf={kind!r}: the tokenizer is not byte-level BPE (SmolLM2, Llama 3, Qwen2 "
                          f"have one), the only kind tunekit writes as GGUF; {_FIX}")
    vocab = tokenizer.get_vocab()
    size = max(n_embed, max(vocab.values()) + 1)
    if size > n_embed:
        raise ConfigError(f"export_gguf={kind!r}: the tokenizer has {size} tokens and the model embeds {n_embed}; "
                          "resize the model's embeddings to the tokenizer (model.resize_token_embeddings) first")
    by_id = {i: token for token, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges") or []]
    writer.add_tokenizer_model("gpt2")
    pre_name = _pre_tokenizer(steps)
    if pre_name:
        writer.add_tokenizer_pre(pre_name)
    else:
        warn("the tokenizer's pre-tokenizer is not one llama.cpp names (gpt-2, smollm, qwen2, llama-bpe); llama.cpp "
             "splits text with its default one, so its tokens may differ from the tokenizer's")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, token_id in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                          ("pad", tokenizer.pad_token_id), ("unk", tokenizer.unk_token_id)):
        if token_id is not None:
            getattr(writer, f"add_{key}_token_id")(token_id)
    writer.add_add_bos_token(_adds(tokenizer, tokenizer.bos_token_id, first=True))
    writer.add_add_eos_token(_adds(tokenizer, tokenizer.eos_token_id, first=False))
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if template:  # transformers' {% generation %} marks (assistant masks) are no jinja llama.cpp knows
        template = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", template)
        writer.add_chat_template(template)
    return template or None


@dataclass(frozen=True)
class _Family:
    """A chat format: the token that tells it, Ollama's Go template for it, its system turn, its stop tokens."""

    marker: str
    template: str
    system: tuple[str, str]  # what opens and closes a system turn in the rendered jinja
    stops: tuple[str, ...]


_FAMILIES = {
    "ChatML": _Family(
        "<|im_start|>",
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        ("<|im_start|>system\n", "<|im_end|>"), ("<|im_start|>", "<|im_end|>")),
    "Llama 3": _Family(
        "<|start_header_id|>",
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
}


def write_modelfile(folder: str | Path, gguf_name: str, chat_template: str | None, tokenizer) -> Path:
    """``folder/Modelfile`` for ``ollama create NAME -f Modelfile``: the GGUF beside it, and the chat format."""
    family = next((name for name, f in _FAMILIES.items()
                   if chat_template and f.marker in chat_template and "<think>" not in chat_template), None)
    lines = ["# Ollama Modelfile written by tunekit export; in this folder: ollama create NAME -f Modelfile",
             f"FROM ./{gguf_name}"]
    stops: list[str] = []
    if family:
        spec = _FAMILIES[family]
        lines[0] += f"\n# Chat format: {family}, from the tokenizer's chat template."
        lines.append(f'TEMPLATE """{spec.template}"""')
        system = _default_system(tokenizer, spec)
        if system:
            lines.append(f'SYSTEM """{system}"""')
        stops = list(spec.stops)
    else:
        lines[0] += ("\n# The chat template is not one tunekit translates (ChatML, Llama 3): no TEMPLATE here, so "
                     "Ollama reads it\n# from the GGUF's tokenizer.chat_template metadata.")
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    path = Path(folder) / "Modelfile"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _default_system(tokenizer, family: _Family) -> str | None:
    """The system prompt the jinja template adds when a conversation has none (SmolLM2's does)."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                             add_generation_prompt=True)
    except Exception:  # a template that needs more than one user turn: no default to find
        return None
    start, end = family.system
    at = text.find(start)
    stop = text.find(end, at + len(start))
    if at < 0 or at > len(tokenizer.bos_token or "") or stop < 0:
        return None
    system = text[at + len(start): stop]
    return system if system and '"""' not in system else None
