"""Does llama.cpp itself run tunekit's GGUF files as transformers runs the model? (``make check-gguf``)

For each family tunekit writes as GGUF (tests/families.py's tiny random models: llama3, qwen2_5, mistral, qwen3,
gemma2, gemma3, phi3, and gemma3-global: Gemma 3 with a full-attention layer and linear rope scaling; and
gemma2-spm, gemma3-spm, phi3-spm, mistral-spm: those with a SentencePiece-style tokenizer, written as llama.cpp's
"llama" vocabulary with scores, as Gemma's, Phi-3-mini's and Mistral 7B's are), the model is built, exported with
``tunekit export`` and ``export_gguf: f16`` (a full model: the merge is trivial), loaded by llama.cpp
(``llama-cpp-python``) and compared with transformers on a few chats, each rendered by the tokenizer's chat template
with the generation prompt:

- tokens: llama.cpp's tokenization of the rendered text (special tokens parsed, bos/eos added as the GGUF says)
  is the tokenizer's;
- logits: llama.cpp's logits after the prompt are transformers' within the tests' tolerance (the largest
  difference over the largest logit: 1e-2 for f16, 1e-1 for q8_0);
- greedy: llama.cpp's greedy tokens (its own sampler, temperature 0, top_k 1, from the tokenizer's ids) are
  transformers' ``generate(do_sample=False)``; where they part, transformers' logits of the two tokens must be
  a near-tie (within the logits' tolerance), else the family fails;
- stops: every end token of the model (the tokenizer's eos, the generation config's) ends generation in
  llama.cpp (an end-of-generation token of its vocabulary), so an answer does not run on.

The tiny models' weights are drawn again with std 0.2 (tiny_model's 0.02 leaves attention flat and every token
a near-tie). One line per family; the exit status is 1 if any family fails.

``--model PATH`` checks a user's merged export instead (a transformers model folder, e.g. ``export_dir``):
its ``--gguf FILE`` (default: an f16 GGUF written to a temporary folder), the same chats, and 32 greedy tokens.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

FAMILIES = ["llama3", "qwen2_5", "mistral", "qwen3", "gemma2", "gemma3", "phi3", "gemma3-global", "gemma2-spm",
            "gemma3-spm", "phi3-spm", "mistral-spm"]
# Gemma 3 as its 4B+ checkpoints are: a full-attention layer (tiny_model's two layers both slide), linear rope
# scaling on it, and a layer pattern that is not llama.cpp's default (written per layer).
VARIANTS = {"gemma3-global": ("gemma3", {"layer_types": ["sliding_attention", "full_attention"], "rope_parameters": {
    "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
    "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}})}
# The family with a SentencePiece-style tokenizer, as Gemma's, Phi-3-mini's and Mistral 7B's are (families.py's
# sentencepiece_model; written as llama.cpp's "llama" vocabulary): Gemma's without a space prefix, Phi-3's chat
# tokens stripping the newline after them, Mistral's [INST] as text.
SENTENCEPIECE = {f"{family}-spm": family for family in ("gemma2", "gemma3", "phi3", "mistral")}
VARIANTS.update({name: (family, {}) for name, family in SENTENCEPIECE.items()})
TOLERANCE = {"f16": 1e-2, "q8_0": 1e-1}
CHATS = [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 12 + 30? Say it in words."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"},
     {"role": "user", "content": "Tell me a story about a cat."}],
]


def tiny_export(family: str, folder: Path) -> Path:
    """The tiny ``family`` model (or variant) with large weights, exported by ``tunekit export`` with
    ``export_gguf: f16``."""
    import json

    from families import FAMILIES as KEYS
    from families import sentencepiece_model, tiny_model, with_large_weights

    import tunekit as tk
    from tunekit.export import export

    build = sentencepiece_model if family in SENTENCEPIECE else tiny_model
    family, changes = VARIANTS.get(family, (family, {}))
    base = build(family, folder / "base")
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, **changes}))
    with_large_weights(base)
    keys = {"model_name_or_path": str(base), "export_dir": str(folder / "export"), "export_gguf": "f16",
            "do_train": False, **KEYS[family][2]}
    return Path(export(tk.load_config(keys)))


def check(folder: Path, gguf_file: Path, kind: str, new_tokens: int) -> tuple[bool, str]:
    """Compare llama.cpp running ``gguf_file`` with transformers running ``folder``: (passed, one line)."""
    import llama_cpp
    import torch
    from llama_cpp._utils import suppress_stdout_stderr
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    chats = []
    for chat in CHATS:
        try:
            chats.append(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
        except Exception:  # Gemma 2's template has no system turn
            continue
    ends = {tokenizer.eos_token_id, *np.atleast_1d(model.generation_config.eos_token_id or [])} - {None}
    ends = {int(token) for token in ends}
    with suppress_stdout_stderr(disable=False):  # llama.cpp's notes on its sliding-window cache
        llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=max(512, 4 * new_tokens + 256), logits_all=False,
                              verbose=False)
    n_vocab = llm.n_vocab()
    tolerance = TOLERANCE[kind]
    same_tokens, worst, greedy, failed = 0, 0.0, [], []
    for text in chats:
        ids = tokenizer(text).input_ids
        with suppress_stdout_stderr(disable=False):  # llama.cpp's note on a bos the template and the tokenizer add
            llama_ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if llama_ids == ids:
            same_tokens += 1
        else:
            failed.append("tokens")
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=new_tokens, eos_token_id=sorted(ends),
                                 pad_token_id=tokenizer.pad_token_id or min(ends), output_logits=True,
                                 return_dict_in_generate=True)
        expected = out.sequences[0, len(ids):].tolist()
        steps = [step[0].float().numpy() for step in out.logits]
        llm.reset()
        llm.eval(ids)
        last = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        first = steps[0][:n_vocab]
        worst = max(worst, float(np.abs(first - last).max() / np.abs(first).max()))
        llm.reset()
        got = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            got.append(int(token))
            if token in ends or len(got) == len(expected) or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                break
        at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), None)
        if at is None and len(got) == len(expected):
            greedy.append(f"{len(got)}/{len(expected)}")
            continue
        if at is None:  # one stopped where the other did not: an end token llama.cpp or transformers does not end on
            greedy.append(f"{len(got)}/{len(expected)} tokens")
            failed.append("greedy")
            continue
        logits = steps[at]
        gap = float(logits[expected[at]] - logits[got[at]]) / float(np.abs(logits).max())
        if gap <= tolerance:
            greedy.append(f"{at}/{len(expected)}+tie({gap:.0e})")
        else:
            greedy.append(f"parts at {at}/{len(expected)} (gap {gap:.2f})")
            failed.append("greedy")
    if worst >= tolerance:
        failed.append("logits")
    vocab = llm._model.vocab
    not_stopping = [tokenizer.convert_ids_to_tokens(t) for t in sorted(ends)
                    if not llama_cpp.llama_vocab_is_eog(vocab, t)]
    if not_stopping:
        failed.append("stops")
    stops = ", ".join(tokenizer.convert_ids_to_tokens(t) for t in sorted(ends))
    line = (f"tokens {same_tokens}/{len(chats)} same | logits {worst:.1e} (< {tolerance:g}) | greedy "
            f"{', '.join(greedy)} | stops on {stops}"
            + (f" (not llama.cpp's end: {', '.join(not_stopping)})" if not_stopping else "")
            + (f" | FAILED: {', '.join(dict.fromkeys(failed))}" if failed else " | ok"))
    llm.close()
    return not failed, line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a merged model folder (an export_dir) instead of the tiny models")
    parser.add_argument("--gguf", help="with --model: its GGUF file (default: f16, written to a temporary folder)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma list (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="greedy tokens (16; 32 with --model)")
    args = parser.parse_args(argv)
    import transformers

    transformers.logging.disable_progress_bar()  # one line per family
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama-cpp-python is not installed: make check-gguf installs it (it compiles llama.cpp: minutes)")
        return 2
    from tunekit.gguf import ARCHITECTURES

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            folder = Path(args.model)
            if args.gguf:
                gguf_file = Path(args.gguf)
            else:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                from tunekit.gguf import write_gguf

                gguf_file = write_gguf(AutoModelForCausalLM.from_pretrained(folder),
                                       AutoTokenizer.from_pretrained(folder), tmp, "f16")
            kind = "q8_0" if "q8_0" in gguf_file.name.lower() else "f16"
            results.append((folder.name, kind, *check(folder, gguf_file, kind, args.max_new_tokens or 32)))
        else:
            from families import FAMILIES as BUILT

            for family in args.families.split(","):
                built = BUILT[VARIANTS.get(family, (family,))[0]][0]
                model_type = {"Gemma3TextConfig": "gemma3_text", "Qwen2Config": "qwen2", "LlamaConfig": "llama"}.get(
                    built, built.removesuffix("Config").lower())
                if model_type not in ARCHITECTURES:
                    continue
                folder = tiny_export(family, Path(tmp) / family)
                results.append((family, "f16", *check(folder, folder / "model-f16.gguf", "f16",
                                                      args.max_new_tokens or 16)))
                print(f"{family:13} f16  {results[-1][3]}", flush=True)
    if args.model:
        print(f"{results[0][0]} {results[0][1]}  {results[0][3]}")
    failed = [name for name, _, passed, _ in results if not passed]
    print(f"check-gguf: {len(results) - len(failed)}/{len(results)} passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
