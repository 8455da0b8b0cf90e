"""The command line: ``tunekit train | chat | export | eval``.

    tunekit train CONFIG.yaml [key=value ...]      overrides after the path, as llamafactory-cli
    tunekit train key=value ...                    no file: the keys alone (e.g. stage=sft dataset=my.jsonl)
    tunekit plan CONFIG.yaml [key=value ...] [--json]   peak memory and time, here and on common GPUs, before a run
    tunekit chat --model NAME [--adapter DIR] [--prompt TEXT]     or: tunekit chat CONFIG.yaml
    tunekit export CONFIG.yaml [key=value ...]     or: --model NAME --adapter DIR --export-dir OUT
                   [--gguf f16|q8_0]     also OUT/model-<type>.gguf and an Ollama Modelfile (export_gguf)
    tunekit eval CONFIG.yaml [key=value ...] [--tuned DIR] [--base MODEL] [--judge RM_DIR] [--checks a,b]
                 [--measures perplexity,...] [--tasks arc_easy,...] [--limit N] [--max-new-tokens N]
                 [--temperature T] [--seed S] [--out DIR]     the trained output against its base on held-out rows

A config or data error prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from .errors import TunekitError


def main(argv: list[str] | None = None) -> int:
    from .checks import BUILT_IN

    parser = argparse.ArgumentParser(prog="tunekit", description="Train LLMs on LLaMA-Factory YAML.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train the stage a YAML config describes")
    p_train.add_argument("config", nargs="?", default=None,
                         help="YAML config (LLaMA-Factory keys); leave it out to give every key as key=value")
    p_train.add_argument("overrides", nargs="*", help="key=value pairs that win over the file")
    p_plan = sub.add_parser("plan", help="predict a run's peak memory and time, here and on common GPUs")
    p_plan.add_argument("config", nargs="?", default=None, help="YAML config; or give every key as key=value")
    p_plan.add_argument("overrides", nargs="*", help="key=value pairs that win over the file")
    p_plan.add_argument("--json", action="store_true", help="one JSON object (peak_memory_bytes, seconds_per_step, ...)")
    p_chat = sub.add_parser("chat", help="talk to a model (with an optional LoRA adapter)")
    p_chat.add_argument("config", nargs="?", default=None,
                        help="optional YAML with model_name_or_path / adapter_name_or_path (as llamafactory-cli chat)")
    p_chat.add_argument("overrides", nargs="*", help="key=value pairs that win over the file")
    p_chat.add_argument("--model", default=None, help="alias, local folder or hub id (default: the adapter's base)")
    p_chat.add_argument("--adapter", default=None, help="LoRA adapter folder (a training output_dir)")
    p_chat.add_argument("--prompt", default=None, help="answer this one prompt and exit")
    p_chat.add_argument("--system", default=None, help="system message")
    p_chat.add_argument("--max-new-tokens", type=int, default=128)
    p_chat.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p_chat.add_argument("--top-p", type=float, default=0.9)
    p_chat.add_argument("--top-k", type=int, default=50)
    p_export = sub.add_parser("export", help="merge a LoRA adapter into its base and save a standalone model "
                                             "(optionally also as GGUF, for llama.cpp and Ollama)")
    p_export.add_argument("config", nargs="?", default=None, help="YAML with model_name_or_path, adapter_name_or_path, export_dir")
    p_export.add_argument("overrides", nargs="*", help="key=value pairs that win over the file")
    p_export.add_argument("--model", default=None)
    p_export.add_argument("--adapter", default=None)
    p_export.add_argument("--export-dir", default=None)
    p_export.add_argument("--gguf", default=None, metavar="f16|q8_0",
                          help="also write EXPORT_DIR/model-<type>.gguf and an Ollama Modelfile (export_gguf)")
    p_eval = sub.add_parser("eval", help="measure the trained output against its base on held-out rows")
    p_eval.add_argument("config", nargs="?", default=None,
                        help="the training YAML (its eval_dataset or val_size rows are the held-out rows)")
    p_eval.add_argument("overrides", nargs="*", help="key=value pairs that win over the file")
    p_eval.add_argument("--tuned", default=None, help="the after side (default: output_dir)")
    p_eval.add_argument("--base", default=None,
                        help="the before side (default: model_name_or_path + adapter_name_or_path)")
    p_eval.add_argument("--judge", default=None, help="rm output_dir (or a check's name) judging the win rate")
    p_eval.add_argument("--checks", default=None, help=f"comma list: {', '.join(BUILT_IN)} or module:function")
    p_eval.add_argument("--measures", default=None, help="comma list: perplexity, checks, win_rate, accuracy")
    p_eval.add_argument("--tasks", default=None, help="lm-evaluation-harness tasks, comma list")
    p_eval.add_argument("--limit", type=int, default=None, help="at most N examples per task")
    p_eval.add_argument("--max-new-tokens", type=int, default=128)
    p_eval.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p_eval.add_argument("--seed", type=int, default=None, help="default: the config's seed")
    p_eval.add_argument("--batch-size", type=int, default=None,
                        help="prompts answered at a time (default: the config's per_device_eval_batch_size)")
    p_eval.add_argument("--out", default=None, help="where eval_results.json goes (default: <tuned>/eval)")
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda message, *rest: f"tunekit: warning: {message}\n"
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "chat":
            return _chat(args)
        if args.command == "plan":
            return _plan(args)
        if args.command == "eval":
            return _eval(args)
        return _export(args)
    except TunekitError as err:
        print(f"tunekit: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _plan(args) -> int:
    import json

    from .run import load_config

    _keys_alone(args)
    cfg = load_config(args.config, *args.overrides)
    from .estimate import cuda_here, estimate, sample_length
    from .stages import stage_of

    stage = stage_of(cfg)  # the model's shape and the rows' lengths are cached: a second plan imports no torch
    length, rows = sample_length(cfg, stage)
    predicted = estimate(cfg, stage, length=length, rows=rows, cuda=cuda_here())
    print(json.dumps(predicted.to_dict(), indent=2) if args.json else
          f"{cfg.stage} on {cfg.model_name_or_path}: {predicted.line()}\n{predicted.table()}")
    return 0


def _keys_alone(args) -> None:
    """`tunekit train key=value ...` (and eval): a first argument with ``=`` that is not a file is a key, not a YAML."""
    if args.config is not None and "=" in args.config and not os.path.exists(args.config):
        args.overrides.insert(0, args.config)
        args.config = None


def _train(args) -> int:
    from .run import load_config

    _keys_alone(args)
    cfg = load_config(args.config, *args.overrides)  # a config error is answered before torch is imported
    from .distributed import say
    from .run import plan, run_plan

    planned = plan(cfg)  # what can be checked before the heavy imports is answered first
    from .models import quiet_loading

    quiet_loading()
    result = run_plan(planned)
    if "saved_rows" in result.metrics:  # tokenized_path: the rows were prepared and saved; nothing trained
        return 0
    if not cfg.do_train:  # do_eval / do_predict alone: the results are said as they are written
        written = [name for name, wanted in (("eval_results.json", cfg.do_eval), ("predict_results.json", cfg.do_predict),
                                             ("generated_predictions.jsonl", cfg.do_predict)) if wanted]
        say(f"[tunekit] wrote {', '.join(written)} to {result.output_dir}")
        return 0
    from .callbacks import read_log  # transformers: imported once training is done, not before an early error

    losses = [r["loss"] for r in read_log(result.log_path) if isinstance(r.get("loss"), (int, float))]
    if losses:
        say(f"[tunekit] loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} logged steps")
    say(f"[tunekit] saved the {'adapter' if cfg.finetuning_type == 'lora' else 'model'} to {result.output_dir}")
    say(f"[tunekit] log: {result.log_path}")
    for plot in result.plots:
        say(f"[tunekit] plot: {plot}")
    return 130 if result.stopped else 0  # stopped by Ctrl-C: a chain such as `train rm && train ppo` halts here


def _base_of(adapter: str) -> str:
    import json
    from pathlib import Path

    from .errors import ConfigError

    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise ConfigError(f"--adapter {adapter!r} is not a saved LoRA adapter (no adapter_config.json)")
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"--adapter {adapter!r} does not name its base model; pass --model")
    return base


def _chat(args) -> int:
    from .generation import generate
    from .models import load_for_inference, quiet_loading

    if args.config is not None:
        from .run import load_config

        cfg = load_config(args.config, *args.overrides, do_train=False)
        args.model = args.model or cfg.model_name_or_path
        args.adapter = args.adapter or cfg.adapter_name_or_path
    model_name = args.model or (_base_of(args.adapter) if args.adapter else "smollm2-135m-instruct")
    quiet_loading()
    model, tokenizer = load_for_inference(model_name, args.adapter)
    options = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                   top_k=args.top_k, system=args.system)
    if args.prompt is not None:
        print(generate(model, tokenizer, args.prompt, **options))
        return 0
    print(f"Chatting with {model_name}{' + ' + args.adapter if args.adapter else ''}. Empty line or Ctrl-D quits.")
    while True:
        try:
            prompt = input("you> ").strip()
        except EOFError:
            break
        if not prompt or prompt in ("exit", "quit"):
            break
        print("model>", generate(model, tokenizer, prompt, **options))
    return 0


def _export(args) -> int:
    from .export import export
    from .run import load_config
    from .models import quiet_loading

    extra = {k: v for k, v in (("model_name_or_path", args.model), ("adapter_name_or_path", args.adapter),
                                ("export_dir", args.export_dir), ("export_gguf", args.gguf)) if v}
    if args.config is None and args.adapter and not args.model:
        extra["model_name_or_path"] = _base_of(args.adapter)
    cfg = load_config(args.config, *args.overrides, do_train=False, **extra)
    quiet_loading()
    path = export(cfg)
    print(f"[tunekit] exported a standalone model to {path}")
    if cfg.export_gguf:
        from pathlib import Path

        from .gguf import gguf_file_name

        print(f"[tunekit] GGUF: {Path(path) / gguf_file_name(cfg.export_gguf)}")
        print(f"[tunekit] Ollama: cd {path} && ollama create NAME -f Modelfile")
    return 0


def _eval(args) -> int:
    from .run import load_config

    _keys_alone(args)
    cfg = load_config(args.config, *args.overrides)  # a config error is answered before torch is imported
    from .evaluation import evaluate
    from .models import quiet_loading

    quiet_loading()
    result = evaluate(cfg, tuned=args.tuned, base=args.base, judge=args.judge, checks=args.checks,
                      measures=args.measures, tasks=args.tasks, limit=args.limit, max_new_tokens=args.max_new_tokens,
                      temperature=args.temperature, seed=args.seed, batch_size=args.batch_size, out=args.out)
    print(result.table())
    print(f"[tunekit] results: {result.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
