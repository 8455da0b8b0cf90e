"""Model families for the tests, built offline: the real chat templates that trl ships in its installed package
(read at test time, never copied here), a small BPE tokenizer that knows each template's special tokens, and tiny
random models from transformers' own config classes."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import trl

TEMPLATES = Path(trl.__file__).parent / "chat_templates"
# Templates for images (their messages are lists of parts), and none other: every other original is a text model's.
VISION = ("idefics3", "llava_next", "qwen2_5_vl", "qwen3_vl", "smolvlm", "lfm2_2_5_vl")
_SPECIAL = re.compile(r"<[|｜][^<>'\"\s]{1,40}?[|｜]>|<\|[a-z_]+>|<[a-z_]+\|>|<(?:start|end)_of_turn>|<bos>|<eos>"
                      r"|\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]|</?s>|\[gMASK\]|<sop>"
                      r"|<end_of_utterance>|</?think>|</?tool_call>|</?tool_response>")
_EOS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>",
        "<turn|>", "<|return|>", "<|eot|>", "</s>", "<end_of_utterance>")
_FAMILY_BOS = (("<start_of_turn>", "<bos>"), ("<|turn>", "<bos>"), ("<|start_header_id|>", "<|begin_of_text|>"),
               ("<｜User｜>", "<｜begin▁of▁sentence｜>"))
_BOS = ("<|begin_of_text|>", "<｜begin▁of▁sentence｜>", "<bos>", "<s>", "<|startoftext|>", "<BOS_TOKEN>")


def template_names() -> list[str]:
    """Every original text-model template in trl's installed package (a template trl adds later is tried too)."""
    return sorted(p.stem for p in TEMPLATES.glob("*.jinja")
                  if not p.stem.endswith("_training") and p.stem not in VISION)


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def specials(text: str) -> list[str]:
    return sorted(set(_SPECIAL.findall(text)))


@lru_cache(maxsize=None)
def _tokenizer_files(names: tuple[str, ...]) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<|pad|>", *names],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_corpus(), trainer)
    return bpe.to_str()


@lru_cache(maxsize=1)
def _corpus() -> list[str]:
    """The bundled data sets' texts (what the tiny model's tokenizer is trained on too) and the tests' own words."""
    from tunekit.models.builtin import _tiny_corpus

    return [*_tiny_corpus(), "Hello! How can I help? What is 2 + 2? It is 4. Think step by step."]


def tokenizer_for(name: str):
    """A tokenizer with trl's ``name`` template as its chat template, knowing the template's special tokens
    (an end-of-sequence and, where the template writes one, a beginning-of-sequence token among them)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    text = template(name)
    found = specials(text)
    eos = "<|endoftext|>" if "<|assistant|>\n" in text else next((t for t in _EOS if t in found), "<|endoftext|>")
    bos = next((t for t in _BOS if t in text), None)
    if bos is None and "bos_token" in text:  # the model's own, where the template writes it by name
        bos = next((b for marker, b in _FAMILY_BOS if marker in text), "<s>")
    names = tuple(dict.fromkeys([*found, eos, *([bos] if bos else []), "<|endoftext|>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_files(names)),
                                        eos_token=eos, bos_token=bos, pad_token="<|pad|>")
    tokenizer.chat_template = text
    return tokenizer


# The families the matrix trains: transformers' config class, trl's template (None: tunekit's built-in one named by
# ``template``), and the keys a user of that family sets.
FAMILIES = {
    "llama3": ("LlamaConfig", "llama3", {}),
    "qwen2_5": ("Qwen2Config", "qwen2_5", {}),
    "qwen3": ("Qwen3Config", "qwen3", {"template": "qwen3"}),
    "qwen3_2507": ("Qwen3Config", "qwen3_instruct_2507", {}),
    "gemma3": ("Gemma3TextConfig", "gemma3", {}),
    "gemma2": ("Gemma2Config", "gemma", {}),
    "phi3": ("Phi3Config", "phi3", {}),
    "mistral": ("MistralConfig", None, {"template": "mistral"}),
}


def tiny_model(family: str, folder: Path) -> Path:
    """A tiny random model of ``family`` with its tokenizer and chat template, saved in ``folder`` (seconds)."""
    import transformers

    config_class, template_name, _ = FAMILIES[family]
    tokenizer = tokenizer_for(template_name) if template_name else _plain_tokenizer(("<s>", "</s>", "[INST]", "[/INST]"))
    shape = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    if config_class in ("Qwen3Config", "Gemma3TextConfig", "Gemma2Config"):
        shape["head_dim"] = 16
    if config_class in ("Gemma3TextConfig", "Gemma2Config"):
        shape["sliding_window"] = 64
    return _save(getattr(transformers, config_class)(**shape), tokenizer, folder)


def _save(config, tokenizer, folder) -> Path:
    """A random model of ``config`` (seeded) and ``tokenizer``, saved in ``folder``."""
    import torch
    import transformers

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def with_large_weights(folder: Path) -> Path:
    """The saved model's matrices drawn again with std 0.2 and its norm weights moved by 0.1: with the default
    0.02 attention is nearly flat, and a wrong query scale or rope in an export would not show."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.normal_(0, 0.2)
            else:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    return folder


def _plain_tokenizer(names: tuple[str, ...]):
    """A tokenizer without a chat template (``template`` names tunekit's built-in one)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_files(names)), bos_token="<s>",
                                   eos_token="</s>", pad_token="<|pad|>")


def sentencepiece_model(family: str, folder: Path) -> Path:
    """A tiny random ``family`` model (gemma2, gemma3, phi3 or mistral) with a SentencePiece-style tokenizer, as
    transformers 5's GemmaTokenizer and LlamaTokenizer build them: BPE with byte fallback over ``▁``-words, the 256
    ``<0xNN>`` byte tokens, and merges as a SentencePiece model's become (every pair of tokens that joins into a
    token, ordered by the joined token's rank), trained on the bundled texts. Gemma's tokenizer (GemmaTokenizer) puts
    no ``▁`` before a text; Phi-3's (LlamaTokenizer, legacy=False) one before a text's first word, and its chat
    tokens strip the whitespace after them, as Phi-3-mini's do; Mistral's (legacy=True) one after every special
    token too, and Mistral's ``[INST]`` is text. The chat template is trl's (Mistral: tunekit's ``template``)."""
    import json

    import transformers
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, trainers

    space = "\u2581"
    trainer = Tokenizer(models.BPE())
    trainer.normalizer = normalizers.Replace(" ", space)
    trainer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=space, prepend_scheme="always", split=True)
    trainer.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=1200, limit_alphabet=90,
                                                               show_progress=False))
    trained = json.loads(trainer.to_str())["model"]
    made = [left + right for left, right in trained["merges"]]  # by rank; the rest of the vocabulary is characters
    pieces = [*dict.fromkeys([*(p for p in trained["vocab"] if p not in set(made)), *made])]
    gemma = family.startswith("gemma")
    core = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] if gemma else ["<unk>", "<s>", "</s>"]
    chat = {"gemma2": ["<start_of_turn>", "<end_of_turn>"], "gemma3": ["<start_of_turn>", "<end_of_turn>"],
            "phi3": ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]}.get(family, [])
    vocab = {token: i for i, token in enumerate([*core, *(f"<0x{b:02X}>" for b in range(256)), *pieces, *chat])}
    known = set(pieces)
    merges = [pair for piece in made for pair in sorted(
        ((piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in known and piece[k:] in known),
        key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))]
    if gemma:
        tokenizer = transformers.GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True)
    else:
        eos = "<|endoftext|>" if family == "phi3" else "</s>"
        tokenizer = transformers.LlamaTokenizer(vocab=vocab, merges=merges, legacy=family != "phi3", eos_token=eos,
                                                pad_token=eos if family == "phi3" else None, add_bos_token=True)
    strips = family == "phi3"  # Phi-3-mini's: its chat tokens and </s> strip the whitespace after them
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False, rstrip=strips and token != "<|endoftext|>")
                          for token in [*chat, *(["</s>"] if strips else [])]], special_tokens=True)
    config_class, template_name, _ = FAMILIES[family]
    if template_name:
        tokenizer.chat_template = template(template_name)
    shape = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    if gemma:
        shape.update(head_dim=16, sliding_window=64)
    return _save(getattr(transformers, config_class)(**shape), tokenizer, folder)
