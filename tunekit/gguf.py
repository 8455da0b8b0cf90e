"""A merged causal LM and its tokenizer as one GGUF file (llama.cpp, Ollama), with an Ollama ``Modelfile`` beside it.

``tunekit export`` with ``export_gguf: f16 | q8_0`` (CLI: ``--gguf``) saves the merged model to ``export_dir``
as always, then writes, in the same folder:

- ``model-f16.gguf`` or ``model-q8_0.gguf``: weights, hyper-parameters and tokenizer. Matrices are float16
  (``f16``) or llama.cpp's Q8_0 blocks of 32 (``q8_0``; a matrix whose rows are not a multiple of 32 stays
  float16); vectors (norms, biases) stay float32, as llama.cpp's ``convert_hf_to_gguf.py`` writes them.
- ``Modelfile``: ``FROM ./model-<type>.gguf``, the chat template in Ollama's Go syntax (ChatML, Llama 3, Gemma's
  ``<start_of_turn>`` (a system text goes before the first user turn, as Gemma 3's template puts it) or Phi-3's
  ``<|user|>``, told from the tokenizer's jinja template; the jinja's default system prompt becomes ``SYSTEM``) and
  a ``PARAMETER stop`` line per end-of-turn token. Another template family gets no ``TEMPLATE``: Ollama then
  picks one from the GGUF's ``tokenizer.chat_template``, which is always written.

Supported ``model_type``: llama (SmolLM2, TinyLlama, the tiny test model, ...), mistral (written as llama, as
llama.cpp does), qwen2, qwen3, gemma2, gemma3_text (Gemma 3 1B and 270M; the multimodal ``gemma3`` is not) and
phi3 (Phi-3-mini-4k, Phi-4), with the default rope (and Gemma 3's linear scaling of its
full-attention layers; Phi-3's long-context ``longrope`` is not), and a byte-level BPE tokenizer
(``tokenizer.ggml.model = "gpt2"``: SmolLM2, Llama 3, Qwen, Phi-4) or a SentencePiece-style one: BPE with byte
fallback and ``▁`` for spaces, as transformers loads Gemma's, Phi-3-mini's, Mistral 7B's, Llama 2's and
TinyLlama's (``tokenizer.ggml.model = "llama"``, llama.cpp's SPM). Anything else is a one-line ``ConfigError``: the
architecture, a reward model's head, rope scaling and what llama.cpp's architecture cannot compute (Gemma 2
without its logit caps, Qwen with a sliding window, ...) before anything is loaded (``check_exportable``), the
tokenizer before the GGUF is written.
A template with thinking blocks (``<think>``) is left to Ollama, as an unknown family is.

Facts the file format rests on:
- llama.cpp's ``llama`` rotates adjacent pairs of a head's dimensions, transformers' Llama its two halves; so
  q_proj and k_proj rows (and biases) are reordered per head, row ``half * d/2 + i`` to row ``2 * i + half``
  (llama.cpp's converter does the same, and transformers' GGUF loader undoes it). ``qwen2``, ``qwen3``,
  ``gemma2``, ``gemma3`` and ``phi3`` rotate halves in llama.cpp too: their rows are written as they are.
- Qwen3's and Gemma 3's per-head q_norm/k_norm are ``attn_q_norm``/``attn_k_norm``; Phi-3's fused qkv_proj is
  ``attn_qkv`` and its fused gate_up_proj (gate rows first) ``ffn_up``, which llama.cpp splits in halves.
- Gemma's RMSNorm multiplies by ``1 + w``, llama.cpp's by ``w``: every Gemma norm weight is written as ``w + 1``
  (transformers' GGUF loader subtracts 1). Gemma's extra norms are ``post_attention_norm``
  (post_attention_layernorm), ``ffn_norm`` (pre_feedforward_layernorm) and ``post_ffw_norm``
  (post_feedforward_layernorm). The embedding is written unscaled: llama.cpp multiplies it by sqrt(hidden).
- llama.cpp scales Gemma's queries by 1/sqrt(head_dim) (by 1/sqrt(hidden/heads) at 27B's layer count), not by
  the config's ``query_pre_attn_scalar``; where the two differ (never in Google's checkpoints) the query weights
  (Gemma 2) or the q_norm weight (Gemma 3) carry the ratio, so llama.cpp computes the model's own scores.
- Gemma 2's ``attn_logit_softcapping``/``final_logit_softcapping`` and both Gemmas' ``sliding_window`` are
  written; which layers slide is llama.cpp's default (every 2nd layer of Gemma 2 attends fully, every 6th of
  Gemma 3) unless ``layer_types`` says otherwise, then a per-layer ``sliding_window_pattern``. Gemma 3's sliding
  layers' rope base is ``rope.freq_base_swa``, its full layers' ``rope.freq_base``. Phi-3's rope may cover part
  of each head (``rope.dimension_count``); its ``sliding_window`` is written, and llama.cpp runs phi3 without one.
- A tied output head is not written (llama.cpp and transformers then use ``token_embd`` for it).
- The tokenizer is written as llama.cpp reads it: every token by id (added tokens included; special ones
  CONTROL, others USER_DEFINED; ids past the tokenizer up to the embedding size ``[PAD<id>]``, UNUSED), the
  BPE merges, the bos/eos/pad/unk ids, whether a bos/eos is added, and ``tokenizer.ggml.pre`` naming the
  pre-tokenizer where it is one llama.cpp has (gpt-2, smollm, qwen2, llama-bpe).
- A SentencePiece-style tokenizer is llama.cpp's ``llama`` vocabulary, which merges by score, not by merge rank:
  each token scores by the first merge that makes it (rank r of n: ``-(1 + r/n)``), so llama.cpp merges in BPE's
  order (llama.cpp's converter, reading a tokenizer.json with its ``LlamaHfVocab``, scores every token -1000:
  llama.cpp then merges the leftmost pairs first, and tokenizes otherwise). Token types: ``<0xNN>`` BYTE, the unk token UNKNOWN, special CONTROL, other added tokens USER_DEFINED
  (``▁`` written as a space, as llama.cpp's converter does). ``add_space_prefix`` is true where the tokenizer puts
  ``▁`` before each text (a ``Prepend`` normalizer, or Metaspace ``always``: transformers' Llama tokenizer with
  legacy=True), false for Gemma's (none) and for Metaspace ``first`` (legacy=False): llama.cpp puts one before a
  text and after every special token, or nowhere, so there a text that does not begin with a special token (a raw
  prompt; a warning says when the chat template's text does not) loses its first ``▁``; and with it, llama.cpp adds
  one before a text that begins with a space, where Metaspace does not. Where the added tokens strip the whitespace
  after them as Phi-3-mini's do, ``general.name`` gets `` (phi-3)``: llama.cpp strips so only for a model so named.
  The merges are written too (llama.cpp's SPM reads none; transformers' GGUF loader builds its Llama tokenizer from
  them, and a Gemma one as a Unigram from the scores; its Phi-3 one writes no ``▁`` for spaces). Merges that are not
  a SentencePiece model's (a BPE trained with ``tokenizers``: pairs that join into a token but are no merge) are a
  warning: llama.cpp may merge them.
- transformers' GGUF loader does not read back everything llama.cpp does: it keeps its config classes' defaults
  for Qwen3's head_dim (128), Gemma's query_pre_attn_scalar (256), Gemma 2's caps and Phi-3's sliding window.
  ``make check-gguf`` (``tools/check_gguf.py``) runs the files in llama.cpp itself.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from .config import GGUF_TYPES, not_one_of
from .errors import ConfigError, warn

@dataclass(frozen=True)
class Architecture:
    """How a transformers ``model_type`` is written for llama.cpp."""

    arch: gguf.MODEL_ARCH
    pairs: bool = False  # q/k rows reordered from two halves to adjacent pairs (llama.cpp's "llama" rope)
    norm_shift: float = 0.0  # added to every RMSNorm weight (Gemma's norms multiply by 1 + w, llama.cpp's by w)
    swa_pattern: int = 0  # llama.cpp's default sliding-window layer pattern (Gemma): layer i slides if i % n < n - 1
    big_layers: int = 0  # llama.cpp's layer count of the Gemma size it scales queries by 1/sqrt(hidden/heads) (27B)


# transformers' model_type -> how llama.cpp runs it
ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(gguf.MODEL_ARCH.LLAMA, pairs=True),
    "mistral": Architecture(gguf.MODEL_ARCH.LLAMA, pairs=True),
    "qwen2": Architecture(gguf.MODEL_ARCH.QWEN2),
    "qwen3": Architecture(gguf.MODEL_ARCH.QWEN3),
    "gemma2": Architecture(gguf.MODEL_ARCH.GEMMA2, norm_shift=1.0, swa_pattern=2, big_layers=46),
    "gemma3_text": Architecture(gguf.MODEL_ARCH.GEMMA3, norm_shift=1.0, swa_pattern=6, big_layers=62),
    "phi3": Architecture(gguf.MODEL_ARCH.PHI3),
}
_FIX = "export without export_gguf and convert the merged folder with llama.cpp's convert_hf_to_gguf.py"
_FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
# The pre-tokenizers of tokenizer.json that llama.cpp has under a name (its llama-vocab.cpp): the pre-split
# regex decides which text pieces BPE sees, so a wrong name tokenizes differently.
_GPT2_SPLIT = {"type": "ByteLevel", "use_regex": True}
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")
_LLAMA3_REGEX = _QWEN2_REGEX.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
_SPACE = "\u2581"  # SentencePiece's "▁": a space, in its vocabularies


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
        vision = " (Gemma 3 with its vision tower: tunekit writes the text model alone, gemma3_text)" * (
            model_type == "gemma3")
        raise ConfigError(f"export_gguf={kind!r}: model_type {model_type!r}{vision} is not one tunekit writes as GGUF "
                          f"({supported}); {_FIX}")
    for layers, rope in _ropes(config).items():
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        scaled = model_type == "gemma3_text" and layers == "full_attention" and rope_type == "linear"  # Gemma 3 4B+
        if rope_type != "default" and not scaled:
            raise ConfigError(f"export_gguf={kind!r}: rope_type {rope_type!r} (rope scaling) is not written by "
                              f"tunekit's GGUF export, only the default rope (and Gemma 3's linear one); {_FIX}")
    problem = _unsupported(config, model_type)
    if problem:
        raise ConfigError(f"export_gguf={kind!r}: {problem}; {_FIX}")
    return ARCHITECTURES[model_type].arch


def _ropes(config) -> dict[str, dict]:
    """The rope parameters by the layers they are for: ``{"all": ...}``, or Gemma 3's full and sliding ones."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope and all(isinstance(value, dict) for value in rope.values()):
        return dict(rope)
    return {"all": dict(rope)}


def _unsupported(config, model_type: str) -> str | None:
    """What of this config llama.cpp's architecture cannot compute, or None."""
    if model_type in ("qwen2", "qwen3") and getattr(config, "use_sliding_window", False):
        return f"use_sliding_window is set, and llama.cpp's {model_type} attends to the whole context"
    if model_type == "gemma2":
        if not (getattr(config, "attn_logit_softcapping", None) and getattr(config, "final_logit_softcapping", None)):
            return "gemma2 without attn_logit_softcapping or final_logit_softcapping: llama.cpp's gemma2 always caps"
        if not getattr(config, "tie_word_embeddings", True):
            return "gemma2 with its own output head (tie_word_embeddings false): llama.cpp's gemma2 uses the embedding"
    if model_type == "gemma3_text" and getattr(config, "attn_logit_softcapping", None):
        return "attn_logit_softcapping is set, and llama.cpp's gemma3 caps no attention logits"
    return None


def write_gguf(model, tokenizer, folder: str | Path, kind: str) -> Path:
    """Write ``folder/model-<kind>.gguf`` (``kind``: f16 | q8_0) and ``folder/Modelfile`` for a merged
    transformers causal LM and its tokenizer; returns the GGUF file's path."""
    if kind not in GGUF_TYPES:
        raise not_one_of("export_gguf", kind, GGUF_TYPES)
    config = model.config
    arch = check_exportable(config, kind)
    spec = ARCHITECTURES[config.model_type]
    path = Path(folder) / gguf_file_name(kind)
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch], use_temp_file=True)  # converted tensors wait on disk
    chat_template, strips = _write_tokenizer(writer, tokenizer, config.vocab_size, kind)
    name = Path(folder).name
    if strips and not any(part in name.lower() for part in ("phi3", "phi-3")):
        name += " (phi-3)"  # llama.cpp strips whitespace after special tokens for a model so named, as Phi-3's do
    _write_hyperparameters(writer, config, kind, name=name, spec=spec)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = model.state_dict()
    query_scale = _query_scale(config, spec)
    scaled = ".attn_q_norm.weight" if any(key.endswith("q_norm.weight") for key in state) else ".attn_q."
    for key, tensor in state.items():
        if tied and key == "lm_head.weight":
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConfigError(f"export_gguf={kind!r}: the model's tensor {key!r} has no GGUF name for "
                              f"{config.model_type}; {_FIX}")
        data = tensor.detach().float().cpu().numpy()
        if spec.norm_shift and name.endswith("norm.weight"):
            data = data + spec.norm_shift
        if query_scale != 1.0 and scaled in name:
            data = data * query_scale
        if spec.pairs and ".attn_q." in name:
            data = _pairs_from_halves(data, n_head)
        elif spec.pairs and ".attn_k." in name:
            data = _pairs_from_halves(data, n_kv)
        data, qtype = _encode(data, kind)
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    write_modelfile(folder, path.name, chat_template, tokenizer)
    return path


def _query_scale(config, spec: Architecture) -> float:
    """The factor that makes llama.cpp's Gemma query scale (1/sqrt(head_dim), or 1/sqrt(hidden/heads) at 27B) the
    model's own, 1/sqrt(query_pre_attn_scalar); 1 for Google's checkpoints, 1 for other architectures."""
    scalar = getattr(config, "query_pre_attn_scalar", None)
    if not spec.big_layers or not scalar:
        return 1.0
    big = config.num_hidden_layers == spec.big_layers
    llama_cpp = config.hidden_size // config.num_attention_heads if big else config.head_dim
    return math.sqrt(llama_cpp / scalar)


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


def _write_hyperparameters(writer: gguf.GGUFWriter, config, kind: str, name: str, spec: Architecture) -> None:
    """The keys llama.cpp sizes the model from, and transformers' GGUF loader rebuilds the config from."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    ropes = _ropes(config)
    rope = ropes.get("full_attention", next(iter(ropes.values())))
    rotated = rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", None) or 1.0)
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[kind])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(int(head_dim * rotated))  # Phi-3's partial_rotary_factor
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    if rope.get("rope_type") == "linear":  # Gemma 3's full-attention layers (check_exportable allows no other)
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    if head_dim != config.hidden_size // config.num_attention_heads or spec.swa_pattern:
        writer.add_key_length(head_dim)  # Gemma: always, as transformers' GGUF loader reads head_dim from it
        writer.add_value_length(head_dim)
    if spec.swa_pattern:
        _write_gemma(writer, config, spec, ropes)
    if spec.arch == gguf.MODEL_ARCH.PHI3:  # as llama.cpp's converter writes it (llama.cpp runs phi3 without it)
        writer.add_sliding_window(int(getattr(config, "sliding_window", None) or 0))


def _write_gemma(writer: gguf.GGUFWriter, config, spec: Architecture, ropes: dict[str, dict]) -> None:
    """Gemma's logit caps, and which layers attend to a sliding window (with which rope base)."""
    if spec.arch == gguf.MODEL_ARCH.GEMMA2:
        writer.add_attn_logit_softcapping(float(config.attn_logit_softcapping))
    if getattr(config, "final_logit_softcapping", None):
        writer.add_final_logit_softcapping(float(config.final_logit_softcapping))
    sliding = [kind == "sliding_attention" for kind in getattr(config, "layer_types", None) or []]
    usual = [i % spec.swa_pattern < spec.swa_pattern - 1 for i in range(config.num_hidden_layers)]
    if any(sliding) and getattr(config, "sliding_window", None):
        writer.add_sliding_window(int(config.sliding_window))
        local = ropes.get("sliding_attention", {}).get("rope_theta")
        if local is not None:
            writer.add_rope_freq_base_swa(float(local))
    elif spec.arch == gguf.MODEL_ARCH.GEMMA2:  # llama.cpp's gemma2 slides every other layer unless told
        sliding = [False] * config.num_hidden_layers
    else:
        return
    if sliding != usual:
        writer.add_sliding_window_pattern(sliding)


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


def _steps(spec: dict | None, key: str) -> list[dict]:
    """The steps of a tokenizer.json normalizer (``key``: normalizers) or pre-tokenizer (pretokenizers)."""
    spec = spec or {}
    return [s for s in (spec.get(key) or []) if s] if spec.get("type") == "Sequence" else [spec] if spec else []


def _space_prefix(tokenizer, spec: dict, steps: list[dict], kind: str) -> bool:
    """For a SentencePiece-style tokenizer (BPE with byte fallback, spaces written as ``▁``): whether llama.cpp is
    to put ``▁`` before each text (after every special token), its ``add_space_prefix``; else a ``ConfigError``."""
    normalizers = _steps(spec.get("normalizer"), "normalizers")
    replaces = any(n.get("type") == "Replace" and (n.get("pattern") or {}).get("String") == " "
                   and n.get("content") == _SPACE for n in normalizers)
    prepends = any(n.get("type") == "Prepend" and n.get("prepend") == _SPACE for n in normalizers)
    metaspace = next((step for step in steps if step.get("type") == "Metaspace"), None)
    if spec["model"].get("type") != "BPE" or not spec["model"].get("byte_fallback") or not (replaces or metaspace):
        raise ConfigError(f"export_gguf={kind!r}: the tokenizer is neither byte-level BPE (SmolLM2, Llama 3, Qwen, "
                          f"Phi-4) nor SentencePiece-style BPE with byte fallback and {_SPACE} for spaces (Gemma, "
                          f"Phi-3-mini, Mistral 7B, Llama 2), the kinds tunekit writes as GGUF; {_FIX}")
    others = [n["type"] for n in normalizers if n.get("type") not in ("Replace", "Prepend")] + [
        step.get("type") for step in steps if step.get("type") not in (None, "Metaspace")
        and not (step.get("type") == "Split" and (step.get("pattern") or {}).get("String") == " " and replaces)]
    if others:
        warn(f"the tokenizer's {', '.join(map(str, others))} (normalizer or pre-tokenizer) is not one llama.cpp's "
             "SentencePiece tokenizer applies: its tokens may differ from the tokenizer's")
    scheme = (metaspace or {}).get("prepend_scheme") or (
        "always" if (metaspace or {}).get("add_prefix_space") else "never")
    if scheme == "first" and not prepends and not _chat_starts_special(tokenizer):
        warn(f"the tokenizer puts {_SPACE} before a text's first word only (Metaspace prepend_scheme 'first'), "
             f"llama.cpp after every special token or nowhere (written: nowhere); the chat template's text does "
             "not begin with a special token, so llama.cpp tokenizes the start of a chat differently")
    return prepends or scheme == "always"


def _chat_starts_special(tokenizer) -> bool:
    """Whether the chat template's text begins with a special token (then no Metaspace prefix is added to it)."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                             add_generation_prompt=True)
    except Exception:  # no template, or one that needs more
        return False
    return any(token.special and text.startswith(token.content) for token in tokenizer.added_tokens_decoder.values())


def _spm_types(tokenizer, tokens: list[str], types: list[int]) -> None:
    """SentencePiece's token types in place: ``<0xNN>`` BYTE, the unknown token UNKNOWN, and an added token that
    is not special (USER_DEFINED) with ``▁`` as a space, since llama.cpp finds it in the text before escaping
    spaces (llama.cpp's converter does the same)."""
    for i, token in enumerate(tokens):
        if i == tokenizer.unk_token_id:
            types[i] = gguf.TokenType.UNKNOWN
        elif types[i] == gguf.TokenType.NORMAL and re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", token):
            types[i] = gguf.TokenType.BYTE
        elif types[i] == gguf.TokenType.USER_DEFINED:
            tokens[i] = token.replace(_SPACE, " ")


def _spm_scores(tokens: list[str], types: list[int], merges: list[tuple[str, str]]) -> list[float]:
    """llama.cpp's SentencePiece tokenizer merges, again and again, the adjacent pair whose joined text is the
    token of highest score (the leftmost among equals); BPE applies the merge of lowest rank. So a token that merge
    rank r makes (its first) scores -(1 + r/n), n merges: the order of the merges is kept. A character no merge
    makes scores -1 and a longer token no merge makes -(2 + id/size), last (llama.cpp's order needs neither: they
    are for transformers' GGUF loader, which reads a Gemma vocabulary as a Unigram's log-probabilities, where fewer
    and earlier pieces then win); a token that is not NORMAL scores 0."""
    rank: dict[str, int] = {}
    for i, (left, right) in enumerate(merges):
        rank.setdefault(left + right, i)
    n, size = max(len(merges), 1), len(tokens)
    return [0.0 if kind != gguf.TokenType.NORMAL else -(1 + rank[token] / n) if token in rank
            else -1.0 if len(token) == 1 else -(2 + i / size) for i, (token, kind) in enumerate(zip(tokens, types))]


def _spm_differences(tokens: list[str], types: list[int], merges: list[tuple[str, str]]) -> int:
    """How many merges llama.cpp's merging by score makes that BPE does not, or makes in another order: pairs of
    NORMAL tokens that join into a NORMAL token but are no merge, and merges listed after one that makes a later
    token. None in a tokenizer converted from a SentencePiece model (its merges are every such pair, by score)."""
    normal = {token for token, kind in zip(tokens, types) if kind == gguf.TokenType.NORMAL}
    pairs = set(merges)
    rank: dict[str, int] = {}
    for i, (left, right) in enumerate(merges):
        rank.setdefault(left + right, i)
    firsts = [rank[left + right] for left, right in merges if left + right in normal]
    out_of_order = sum(later < earlier for earlier, later in zip(firsts, firsts[1:]))
    missing = sum(1 for token in normal for k in range(1, len(token))
                  if token[:k] in normal and token[k:] in normal and (token[:k], token[k:]) not in pairs)
    return missing + out_of_order


def _strips_like_phi3(tokenizer, tokens: list[str], types: list[int]) -> bool:
    """Whether the added tokens strip the whitespace after them (``rstrip``) as Phi-3's do: llama.cpp does so only
    for a model whose ``general.name`` has ``phi3`` or ``phi-3`` in it (every CONTROL, USER_DEFINED and UNKNOWN
    token, and ``</s>``, but ``<unk>``, ``<s>`` and ``<|endoftext|>``). Another stripping is warned about."""
    added = tokenizer.added_tokens_decoder
    strips = {i for i, token in added.items() if token.rstrip}
    if not strips and not any(token.lstrip for token in added.values()):
        return False
    kept = {"<unk>", "<s>", "<|endoftext|>"}
    phi3 = {i for i, (token, kind) in enumerate(zip(tokens, types)) if token not in kept and (
        token == "</s>" or kind in (gguf.TokenType.CONTROL, gguf.TokenType.USER_DEFINED, gguf.TokenType.UNKNOWN))}
    if strips == phi3 and not any(token.lstrip for token in added.values()):
        return True
    warn("the tokenizer strips whitespace beside some added tokens (rstrip/lstrip) in a way llama.cpp does not "
         "(it strips after every special token of a model named phi-3, nowhere else): its tokens may differ")
    return False


def _write_tokenizer(writer: gguf.GGUFWriter, tokenizer, n_embed: int, kind: str) -> tuple[str | None, bool]:
    """Vocabulary, merges (and SentencePiece's scores), special ids and chat template; returns the chat template
    written (or None) and whether llama.cpp must know the model as a Phi-3 to strip as the tokenizer does."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    steps = _pre_steps(spec.get("pre_tokenizer"))
    byte_level = spec["model"].get("type") == "BPE" and any(step.get("type") == "ByteLevel" for step in steps)
    space_prefix = None if byte_level else _space_prefix(tokenizer, spec, steps, kind)
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
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in spec["model"].get("merges") or []]
    strips = False
    if space_prefix is None:
        writer.add_tokenizer_model("gpt2")
        pre_name = _pre_tokenizer(steps)
        if pre_name:
            writer.add_tokenizer_pre(pre_name)
        else:
            warn("the tokenizer's pre-tokenizer is not one llama.cpp names (gpt-2, smollm, qwen2, llama-bpe); "
                 "llama.cpp splits text with its default one, so its tokens may differ from the tokenizer's")
    else:
        missing = sum(f"<0x{b:02X}>" not in vocab for b in range(256))
        if missing:  # llama.cpp looks a byte up by that name (the newline's as it loads): it would stop there
            raise ConfigError(f"export_gguf={kind!r}: the tokenizer falls back to bytes, but {missing} of the 256 "
                              f"byte tokens <0x00>..<0xFF> are not in its vocabulary, which llama.cpp needs; {_FIX}")
        _spm_types(tokenizer, tokens, types)
        differences = _spm_differences(tokens, types, pairs)
        if differences:
            warn(f"the tokenizer's BPE merges are not a SentencePiece model's ({differences} token pairs llama.cpp "
                 "merges by score that BPE does not, or does later): llama.cpp may tokenize some words differently")
        strips = _strips_like_phi3(tokenizer, tokens, types)
        writer.add_tokenizer_model("llama")  # llama.cpp's SentencePiece (SPM) tokenizer
        writer.add_tokenizer_pre("default")
        writer.add_token_scores(_spm_scores(tokens, types, pairs))
        writer.add_add_space_prefix(space_prefix)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)  # llama.cpp's SPM reads none; transformers' GGUF loader builds BPE from them
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
    return template or None, strips


@dataclass(frozen=True)
class _Family:
    """A chat format: the tokens that tell it, Ollama's Go template for it, its system turn, its stop tokens."""

    markers: tuple[str, ...]  # all of them in the jinja template
    template: str
    system: tuple[str, str] | None  # what opens and closes a system turn in the rendered jinja (None: folded)
    stops: tuple[str, ...]


_FAMILIES = {
    "ChatML": _Family(
        ("<|im_start|>",),
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        ("<|im_start|>system\n", "<|im_end|>"), ("<|im_start|>", "<|im_end|>")),
    "Llama 3": _Family(
        ("<|start_header_id|>",),
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    # Gemma has no system turn: Gemma 3's template puts the system text and a blank line before the first user turn.
    "Gemma": _Family(
        ("<start_of_turn>",),
        '{{- $system := "" }}{{- range .Messages }}{{- if eq .Role "system" }}{{- $system = .Content }}{{- else }}'
        '<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
        '{{ if $system }}{{ $system }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n{{ $system = "" }}{{- end }}{{- end }}'
        "<start_of_turn>model\n",
        None, ("<start_of_turn>", "<end_of_turn>")),
    "Phi-3": _Family(
        ("<|user|>", "<|end|>"),
        "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n",
        ("<|system|>\n", "<|end|>"), ("<|end|>", "<|user|>", "<|assistant|>")),
}


def write_modelfile(folder: str | Path, gguf_name: str, chat_template: str | None, tokenizer) -> Path:
    """``folder/Modelfile`` for ``ollama create NAME -f Modelfile``: the GGUF beside it, and the chat format."""
    family = next((name for name, f in _FAMILIES.items() if chat_template and "<think>" not in chat_template
                   and all(marker in chat_template for marker in f.markers)), None)
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
        lines[0] += ("\n# The chat template is not one tunekit translates (ChatML, Llama 3, Gemma, Phi-3): no TEMPLATE "
                     "here, so Ollama reads it\n# from the GGUF's tokenizer.chat_template metadata.")
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    path = Path(folder) / "Modelfile"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _default_system(tokenizer, family: _Family) -> str | None:
    """The system prompt the jinja template adds when a conversation has none (SmolLM2's does)."""
    if family.system is None:
        return None
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
