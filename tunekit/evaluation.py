"""Did the stage work? A trained output against its base on held-out rows: ``tk.evaluate`` and ``tunekit eval``.

    result = tk.evaluate("examples/sft_lora.yaml")          # after: output_dir; before: what training started from
    print(result.table())                                    # also saved: <output_dir>/eval/eval_results.json
    tk.evaluate(cfg, judge="saves/rm", base="saves/sft")     # win rate over another run, judged by a reward model

The held-out rows are the config's ``eval_dataset``, or the ``val_size`` rows training held out (same seed).
The measures follow from the stage's description (``Stage``), never from its name:
- perplexity of the held-out text (stages on text: every token) or of the answers (stages that learn the
  data set's answers: the tokens that carry loss), lower is better;
- checks (``tunekit/checks.py``): the answers of each side scored by functions, as GRPO's rewards are;
  a data set brings its own (``math_demo``: accuracy, format; ``identity``: name), grpo its ``reward_funcs``;
- the win rate of the tuned model's answers over the base's (same prompts, seed and settings), judged by a
  reward model (``judge=``, an rm output_dir; ppo: its ``reward_model``) or by a check (the first, or ``judge=NAME``):
  the default for stages that learn from preferences or rewards (dpo, kto, ppo, grpo); ties are counted apart;
- pairwise accuracy (reward models): the chosen answer of each held-out pair scored above the rejected one;
  the base is the starting model with a fresh score head (about chance);
- benchmark tasks (``tasks=``) through lm-evaluation-harness (``tunekit/harness.py``), for each side.
Results: ``eval_results.json`` and ``eval_samples.jsonl`` (``out``, default ``<tuned>/eval``) and an ``EvalResult``.
"""

from __future__ import annotations

import difflib
import gc
import importlib.util
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import checks as checking
from .config import Config, comma_list, parse_config
from .errors import ConfigError

RESULTS = "eval_results.json"
SAMPLES = "eval_samples.jsonl"
MEASURES = ("perplexity", "checks", "win_rate", "accuracy")  # what ``measures=`` picks from
LOWER_IS_BETTER = ("perplexity", *checking.LOWER_IS_BETTER)


@dataclass
class EvalResult:
    """A before/after on held-out rows: what ``tk.evaluate`` returns and the ``EvalPanel`` draws.

    ``measures`` maps a measure's name to its value for each side, e.g.
    ``{"perplexity": {"base": 14.2, "tuned": 6.3}, "accuracy": {"base": 0.1, "tuned": 0.4}}``;
    ``lower_is_better`` names the measures where smaller is better (perplexity).
    ``win_rate`` (when answers were judged): ``{"judge": "saves/03_rm" or "check:accuracy", "wins": 12,
    "ties": 3, "losses": 5, "win_rate": 0.675, "stderr": 0.1, "without_ties": 0.706}``; win_rate =
    (wins + ties / 2) / rows, without_ties = wins / (wins + losses) (the rate among the prompts where the answers differ).
    ``intervals``: for a measure scored per prompt (checks, the judge's score), the change tuned - base, paired
    by prompt, and its 95% interval: ``{"accuracy": {"change": 0.3, "low": 0.15, "high": 0.45}}``; an interval
    that holds 0 is a change the held-out rows cannot tell from noise.
    ``samples``: one dict per held-out prompt: ``prompt``, ``base`` and ``tuned`` (the answers), ``reference``
    (the data set's answer, when it has one), ``scores`` (``{"base": {measure: value}, "tuned": {...}}``) and
    ``verdict`` ("win", "tie" or "loss", when judged). ``stderr``: a measure's standard error for each side,
    where one is known (benchmark tasks: ``{"arc_easy/acc": {"base": 0.02, "tuned": 0.02}}``).
    """

    stage: str
    base: str  # what the "before" side is: model (+ adapter)
    tuned: str  # what the "after" side is: the trained output folder
    rows: int  # held-out rows measured
    measures: dict[str, dict[str, float]] = field(default_factory=dict)
    lower_is_better: list[str] = field(default_factory=list)
    win_rate: dict | None = None
    samples: list[dict] = field(default_factory=list)
    output_dir: str | None = None  # where eval_results.json and eval_samples.jsonl were written
    stderr: dict[str, dict[str, float]] = field(default_factory=dict)  # a measure's standard error per side
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)  # paired change tuned - base, 95% interval

    def to_dict(self) -> dict:
        """What ``eval_results.json`` holds (everything but the samples)."""
        out = asdict(self)
        out.pop("samples")
        return out

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULTS).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        with open(folder / SAMPLES, "w", encoding="utf-8") as handle:
            for sample in self.samples:
                handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
        self.output_dir = str(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "EvalResult":
        folder = Path(folder)
        data = json.loads((folder / RESULTS).read_text(encoding="utf-8"))
        data.pop("output_dir", None)
        samples_path = folder / SAMPLES
        samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines() if line.strip()] \
            if samples_path.is_file() else []
        return cls(**data, samples=samples, output_dir=str(folder))

    def table(self) -> str:
        """The before/after as a plain-text table (what ``tunekit eval`` prints)."""
        lines = [f"{self.stage}: {self.base} -> {self.tuned} on {self.rows} held-out rows", "",
                 f"{'measure':<24}{'base':>12}{'tuned':>12}{'change':>12}   95% interval of the change"]
        for name, sides in self.measures.items():
            base, tuned = sides.get("base"), sides.get("tuned")
            change = "" if base is None or tuned is None else f"{tuned - base:+.4g}"
            span = self.intervals.get(name)
            span = f"   [{span['low']:+.3g}, {span['high']:+.3g}]" if span else ""
            note = " (lower is better)" if name in self.lower_is_better else ""
            lines.append(f"{name:<24}{_fmt(base):>12}{_fmt(tuned):>12}{change:>12}{span}{note}")
        if self.win_rate:
            w = self.win_rate
            apart = w.get("without_ties")
            apart = "" if apart is None else f"; ties apart {apart:.3f}"
            lines += ["", f"win rate of tuned over base: {w['win_rate']:.3f} ± {w.get('stderr', 0):.3f}{apart} "
                          f"({w['wins']} wins, {w['ties']} ties, {w['losses']} losses; judged by {w['judge']})"]
        return "\n".join(lines)

    __str__ = table


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------


def evaluate(config, *, tuned: str | None = None, base: str | None = None, judge: str | None = None,
             checks: str | list | None = None, measures: str | list[str] | None = None, tasks=None,
             limit: int | None = None, max_new_tokens: int = 128, temperature: float = 0.0, seed: int | None = None,
             batch_size: int | None = None, out: str | None = None, **overrides) -> EvalResult:
    """The tuned model against its base on the config's held-out rows; saved under ``out`` and returned.

    ``config``: the training config (a YAML path, a dict or a ``Config``; ``overrides`` win over it).
    ``tuned``: the "after" side, default ``output_dir`` (a LoRA adapter on ``model_name_or_path``, or a full
    model). ``base``: the "before" side, default what training started from (``model_name_or_path`` with
    ``adapter_name_or_path``); another run's output_dir or a model name compares with that instead.
    ``judge``: an rm output_dir, or a check (a built-in's name or ``module:function``), that judges the win
    rate. ``checks``: a comma list or a list of built-in checks (accuracy, format, name, repetition),
    ``module:function`` paths or functions. ``measures``: a subset of perplexity, checks, win_rate, accuracy
    (default: the stage's own; with the default, the held-out prompts are answered by both sides for the samples).
    ``tasks``: lm-evaluation-harness tasks (comma list), at most ``limit`` examples each.
    Answers are sampled with the same ``max_new_tokens``, ``temperature`` (0: greedy; above: the config's
    top_p / top_k) and ``seed`` (default: the config's) on both sides, ``batch_size`` prompts at a time
    (default: the config's ``per_device_eval_batch_size``; on a CPU, 16 answers at a time cost about half as much
    each as 8).
    """
    from .distributed import say
    from .run import load_config
    from .stages import stage_of

    cfg = load_config(config, **overrides)
    stage = stage_of(cfg)
    if not (cfg.eval_dataset or cfg.val_size):
        raise ConfigError(f"tk.evaluate measures held-out rows: give eval_dataset or val_size (e.g. val_size=0.1, the "
                          f"rows training held out with seed {cfg.seed}) for dataset={cfg.dataset!r}")
    seed = cfg.seed if seed is None else seed
    batch_size = batch_size or cfg.per_device_eval_batch_size
    plan = _plan(cfg, stage, judge, checks, measures, tasks)
    after, before = _tuned_side(cfg, tuned), _base_side(cfg, base)
    data_cfg = replace(cfg, do_train=False)  # the held-out rows alone (the same rows the run held out)
    settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": cfg.top_p,
                "top_k": cfg.top_k, "seed": seed, "batch_size": batch_size}
    if plan.scorer:
        result = _evaluate_scorer(cfg, data_cfg, before, after, seed, batch_size, say)
    else:
        result = _evaluate_generator(cfg, data_cfg, stage, plan, before, after, settings, limit, say)
    folder = Path(out) if out else (Path(after.folder) / "eval" if Path(after.folder).is_dir()
                                    else Path(cfg.output_dir) / "eval")
    result.save(folder)
    say(f"[tunekit] eval: wrote {folder / RESULTS} and {folder / SAMPLES}")
    return result


@dataclass
class _Plan:
    """What to measure, decided (and checked) before anything loads."""

    measures: list[str]
    scorer: bool  # the stage trains a reward model: pairwise accuracy
    sample: bool = False  # answer the held-out prompts even when no measure needs it (the samples show them)
    checks: list = field(default_factory=list)  # tunekit.checks.Check
    judge_rm: str | None = None  # an rm output_dir judging the win rate
    judge_check: Any = None  # or a Check
    tasks: list[str] = field(default_factory=list)

    @property
    def answers(self) -> bool:
        return self.sample or "checks" in self.measures or "win_rate" in self.measures


def _plan(cfg: Config, stage, judge, checks, measures, tasks) -> _Plan:
    from .models import reward_model_config

    scorer = stage.head == "score"
    generative = not scorer and stage.rows != "text"  # its rows have prompts to answer
    judged = generative and (stage.reference or stage.rewards is not None)  # learns from preferences or rewards
    reads_reward_funcs = "reward_funcs" in stage.config_keys
    applies = {"perplexity": not scorer and (stage.rows == "text" or stage.rows == "chat" and stage.rewards is None),
               "checks": generative, "win_rate": generative, "accuracy": scorer}
    if checks is not None and not generative:
        raise ConfigError(f"checks={checks!r} scores answers to prompts, but stage={cfg.stage!r} has none to answer; "
                          "leave checks out")
    found = checking.resolve(checks if checks is not None else checking.defaults(cfg, reads_reward_funcs), cfg) \
        if generative else []

    judge_rm = judge_check = None
    if judge is not None:
        if not generative:
            raise ConfigError(f"judge={judge!r} judges answers, but stage={cfg.stage!r} gives none; leave judge out")
        if not Path(judge).exists() and (judge in checking.BUILT_IN or ":" in judge):  # a check judges
            judge_check = next((c for c in found if c.name == judge), None) or checking.resolve([judge], cfg)[0]
        else:
            reward_model_config(judge, "judge")  # a one-line error naming judge= when it is not an rm output
            judge_rm = judge
    else:
        rm = cfg.reward_model if cfg.reward_model and cfg.reward_model_type != "function" and \
            _is_reward_model(cfg.reward_model) else None
        first = found[0] if found else None
        judge_rm, judge_check = (None, first) if reads_reward_funcs and first else (rm, None if rm else first)
    has_judge = judge_rm is not None or judge_check is not None

    if measures is None:
        chosen = [m for m in MEASURES if applies[m] and m not in ("checks", "win_rate")]
        if found:
            chosen.append("checks")
        if has_judge and (judged or judge is not None):
            chosen.append("win_rate")
        if judged and not has_judge:
            raise ConfigError(f"stage={cfg.stage!r} is measured by the win rate of the tuned model's answers over the "
                              "base's: give judge= (the output_dir of an rm run) or checks= "
                              f"({', '.join(checking.BUILT_IN)} or module:function) to judge them")
    else:
        chosen = comma_list(measures) if isinstance(measures, str) else list(measures)
        for name in chosen:
            if name not in MEASURES:
                close = difflib.get_close_matches(str(name), MEASURES, n=1, cutoff=0.5)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ConfigError(f"measures: {name!r} is not a measure; {hint}choose from {', '.join(MEASURES)}")
            if not applies[name]:
                fits = ", ".join(m for m in MEASURES if applies[m])
                raise ConfigError(f"measures: {name!r} does not apply to stage={cfg.stage!r}; it has {fits}")
        if "checks" in chosen and not found:
            raise ConfigError(f"measures: 'checks' needs checks: give checks= ({', '.join(checking.BUILT_IN)} or "
                              "module:function)")
        if "win_rate" in chosen and not has_judge:
            raise ConfigError("measures: 'win_rate' needs a judge: give judge= (the output_dir of an rm run) or "
                              "checks=")
        if not chosen:
            raise ConfigError(f"measures is empty; choose from {', '.join(m for m in MEASURES if applies[m])}")

    task_list = comma_list(tasks) if isinstance(tasks, str) else list(tasks or [])
    if task_list:
        if scorer:
            raise ConfigError(f"tasks={tasks!r} measure a language model; stage={cfg.stage!r} trains a reward model")
        if importlib.util.find_spec(f"{__package__}.harness") is None:
            raise ConfigError(f"tasks={tasks!r} need tunekit.harness (lm-evaluation-harness), which this install lacks")
    return _Plan(measures=list(dict.fromkeys(chosen)), scorer=scorer, sample=generative and measures is None,
                 checks=found, judge_rm=judge_rm, judge_check=judge_check, tasks=task_list)


def _is_reward_model(path: str) -> bool:
    from .models import reward_model_config

    try:
        reward_model_config(path)
    except ConfigError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# the two sides
# ---------------------------------------------------------------------------------------------


@dataclass
class _Side:
    """One side of the comparison: ``name`` ("base" or "tuned"), what the table calls it, what loads."""

    name: str
    label: str
    model: str
    adapter: str | None
    folder: str  # the folder or model name it was given as (an rm output loads from it as it is)
    key: str  # the argument or config key that gave it (errors name it)
    explicit: bool = True


def _tuned_side(cfg: Config, tuned: str | None) -> _Side:
    if tuned is not None:
        return _given("tuned", tuned, cfg)
    folder = Path(cfg.output_dir)
    if (folder / "adapter_config.json").is_file():
        earlier = comma_list(cfg.adapter_name_or_path)[:-1] if cfg.finetuning_type == "lora" else []
        # earlier adapters were merged in before training, the last one trained on and saved here
        return _Side("tuned", cfg.output_dir, cfg.model_name_or_path, ",".join([*earlier, cfg.output_dir]),
                     cfg.output_dir, "output_dir", explicit=False)
    if (folder / "config.json").is_file():
        return _Side("tuned", cfg.output_dir, cfg.output_dir, None, cfg.output_dir, "output_dir", explicit=False)
    raise ConfigError(f"output_dir={cfg.output_dir!r} holds no trained model (no adapter_config.json or config.json); "
                      "train first (tunekit train CONFIG.yaml) or give tuned= (a run's output_dir or a model)")


def _base_side(cfg: Config, base: str | None) -> _Side:
    if base is not None:
        return _given("base", base, cfg)
    adapter = cfg.adapter_name_or_path
    label = cfg.model_name_or_path + (f" + {adapter}" if adapter else "")
    return _Side("base", label, cfg.model_name_or_path, adapter, cfg.model_name_or_path, "model_name_or_path",
                 explicit=False)


def _given(name: str, spec: str, cfg: Config) -> _Side:
    """A side given as a run's output_dir (a LoRA adapter on the base it names, or a full model) or a model name."""
    folder = Path(spec)
    if (folder / "adapter_config.json").is_file():
        named = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
        return _Side(name, spec, named or cfg.model_name_or_path, spec, spec, name)
    if (folder / "config.json").is_file():
        return _Side(name, spec, spec, None, spec, name)
    if folder.exists():
        raise ConfigError(f"{name}={spec!r} is a folder without adapter_config.json or config.json; give the "
                          "output_dir of a run, or a model name")
    return _Side(name, spec, spec, None, spec, name)  # a model name: alias, hub id


def _load(cfg: Config, side: _Side, head: str = "causal_lm"):
    """Model and tokenizer of one side, through the one loader (``models.load_model``), ready to run."""
    from .models import load_model

    loading = parse_config({"model_name_or_path": side.model, "adapter_name_or_path": side.adapter, "do_train": False,
                            "finetuning_type": "lora" if side.adapter else "full", "template": cfg.template,
                            "enable_thinking": cfg.enable_thinking, "preserve_thinking": cfg.preserve_thinking,
                            "trust_remote_code": cfg.trust_remote_code,
                            "cache_dir": cfg.cache_dir, "backend": cfg.backend})
    model, tokenizer = load_model(loading, head=head)
    model.eval()
    return model, tokenizer


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# language models: perplexity, answers, checks, win rate, tasks
# ---------------------------------------------------------------------------------------------


@dataclass
class _Prompt:
    messages: list[dict]  # the conversation up to its last user turn
    tools: Any
    reference: str | None  # the data set's answer
    columns: dict  # the row's other columns, as a check gets them


def _prompts(rows) -> list[_Prompt]:
    """One prompt per held-out row (a prompt that several rows share, as in KTO sets, once)."""
    from .data import split_answer
    from .rewards import text_of

    found: dict[str, _Prompt] = {}
    for row in rows:
        if row.get("text") is not None:  # a language-modelling row (sft on text) has no prompt to answer
            continue
        if row.get("messages"):
            prompt, reference = split_answer(row["messages"])
        else:
            prompt = row["prompt"]
            answer = row.get("chosen") or row.get("completion")
            reference = text_of(answer) if answer and row.get("label", True) else None
        columns = {k: text_of(v) if isinstance(v, list) else v for k, v in row.items()
                   if k not in ("messages", "prompt", "tools")}
        columns["answer"] = reference
        key = json.dumps(prompt, sort_keys=True, default=str)
        if key in found:
            if found[key].reference is None and reference is not None:
                found[key] = _Prompt(prompt, row.get("tools"), reference, columns)
            continue
        found[key] = _Prompt(prompt, row.get("tools"), reference, columns)
    return list(found.values())


def _question(messages: list[dict]) -> str:
    """The last user turn's text (what a reward model scores an answer to, and what a sample shows)."""
    return next((m["content"] for m in reversed(messages) if m["role"] in ("user", "tool")), "")


def _answers(model, tokenizer, prompts: list[_Prompt], settings: dict) -> list[str]:
    from .data import prompt_ids
    from .generation import generate_ids

    ids = [prompt_ids(tokenizer, p.messages, p.tools) for p in prompts]
    sampling = settings["temperature"] > 0
    out = generate_ids(model, tokenizer, ids, max_new_tokens=settings["max_new_tokens"], do_sample=sampling,
                       temperature=settings["temperature"] if sampling else 1.0, top_p=settings["top_p"],
                       top_k=settings["top_k"], seed=settings["seed"], batch_size=settings["batch_size"])
    return [tokenizer.decode(a, skip_special_tokens=True).strip() for a in out]


def _perplexity(model, tokenizer, data_cfg: Config, stage, batch_size: int) -> tuple[float, int]:
    """exp(mean loss) over the held-out tokens that carry loss in the stage's own rows (``prepare``)."""
    import torch

    from .data import IGNORE_INDEX
    from .stages.base import PadCollator

    rows = stage.prepare(data_cfg, tokenizer)["eval"]
    keep = [c for c in ("input_ids", "attention_mask", "labels", "position_ids") if c in rows.column_names]
    collate = PadCollator(tokenizer.pad_token_id)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            part = rows.select(range(start, min(start + batch_size, len(rows))))
            batch = collate([{c: row[c] for c in keep} for row in part])
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False).logits[:, :-1].float()
            targets = labels[:, 1:]
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                       ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((targets != IGNORE_INDEX).sum())
    return (math.exp(total / count) if count else math.nan), len(rows)


def _tasks(model, tokenizer, tasks: list[str], limit, batch_size: int) -> dict[str, float]:
    from .harness import run_tasks  # lm-evaluation-harness: imported only when tasks are asked for

    return run_tasks(model, tokenizer, tasks, limit=limit, batch_size=batch_size)


def _evaluate_generator(cfg, data_cfg, stage, plan: _Plan, before: _Side, after: _Side, settings: dict, limit,
                        say) -> EvalResult:
    from .data import load_rows
    from .models import load_tokenizer

    prompts: list[_Prompt] = []
    if plan.answers:
        prompts = _prompts(load_rows(data_cfg, stage.rows, load_tokenizer(cfg))["eval"])
    measures: dict[str, dict[str, float]] = {}
    stderr: dict[str, dict[str, float]] = {}  # the tasks' "task/metric_stderr", kept beside their measure
    answers: dict[str, list[str]] = {}
    intervals: dict[str, dict[str, float]] = {}
    rows = len(prompts)
    for side in (before, after):
        say(f"[tunekit] eval: {side.name} = {side.label}")
        model, tokenizer = _load(cfg, side)
        if "perplexity" in plan.measures:
            value, texts = _perplexity(model, tokenizer, data_cfg, stage, settings["batch_size"])
            measures.setdefault("perplexity", {})[side.name] = value
            rows = rows or texts
        if plan.answers:
            answers[side.name] = _answers(model, tokenizer, prompts, settings)
        if plan.tasks:
            for key, value in _tasks(model, tokenizer, plan.tasks, limit, settings["batch_size"]).items():
                into, key = (stderr, key[: -len("_stderr")]) if key.endswith("_stderr") else (measures, key)
                into.setdefault(key, {})[side.name] = value
        del model, tokenizer
        _free()

    scores: dict[str, dict[str, list[float]]] = {"base": {}, "tuned": {}}  # side -> measure -> per prompt
    if plan.answers:
        messages = [p.messages for p in prompts]
        columns = {k: [p.columns.get(k) for p in prompts] for k in dict.fromkeys(k for p in prompts for k in p.columns)}
        wanted = list(plan.checks) if "checks" in plan.measures else []
        if "win_rate" in plan.measures and plan.judge_check is not None and plan.judge_check not in wanted:
            wanted.append(plan.judge_check)
        for check in wanted:
            for side in ("base", "tuned"):
                scores[side][check.name] = check(messages, answers[side], columns)
        if "win_rate" in plan.measures and plan.judge_rm:
            from .models import load_reward_model, score

            say(f"[tunekit] eval: judge = {plan.judge_rm}")
            judge, tokenizer = load_reward_model(plan.judge_rm, "judge")
            questions = messages  # the whole conversation, earlier turns kept, as the reward model trained on it
            for side in ("base", "tuned"):
                scores[side]["judge_score"] = score(judge, tokenizer, questions, answers[side], settings["batch_size"])
            del judge, tokenizer
            _free()
        for name in scores["base"]:
            if "checks" in plan.measures and any(c.name == name for c in plan.checks) or name == "judge_score":
                measures[name] = {side: _mean(scores[side][name]) for side in ("base", "tuned")}
                intervals[name] = _paired_interval(scores["base"][name], scores["tuned"][name])

    win_rate, verdicts = None, []
    if "win_rate" in plan.measures:
        judged_by = "judge_score" if plan.judge_rm else plan.judge_check.name
        sign = -1.0 if judged_by in LOWER_IS_BETTER else 1.0  # judged by repetition: the less repetitive answer wins
        verdicts = [_verdict(base, tuned, sign * b, sign * t) for base, tuned, b, t in zip(
            answers["base"], answers["tuned"], scores["base"][judged_by], scores["tuned"][judged_by])]
        win_rate = {"judge": plan.judge_rm or f"check:{plan.judge_check.name}", **_win_rate(verdicts)}
    samples = []
    for i, prompt in enumerate(prompts):
        sample = {"prompt": _question(prompt.messages), "reference": prompt.reference,
                  "base": answers["base"][i], "tuned": answers["tuned"][i],
                  "scores": {side: {k: _number(v[i]) for k, v in scores[side].items()} for side in ("base", "tuned")}}
        if len(prompt.messages) > 1:
            sample["conversation"] = prompt.messages
        if verdicts:
            sample["verdict"] = verdicts[i]
        samples.append(sample)
    return EvalResult(stage=cfg.stage, base=before.label, tuned=after.label, rows=rows, measures=measures,
                      lower_is_better=[m for m in measures if m in LOWER_IS_BETTER], win_rate=win_rate,
                      samples=samples, stderr=stderr, intervals={k: v for k, v in intervals.items() if v})


def _verdict(base_answer: str, tuned_answer: str, base_score: float, tuned_score: float) -> str:
    """win, tie or loss of the tuned answer: the same text, or scores within 1e-6 (or unscored), tie."""
    if base_answer == tuned_answer or math.isnan(base_score) or math.isnan(tuned_score) \
            or abs(tuned_score - base_score) <= 1e-6 * max(1.0, abs(base_score)):
        return "tie"
    return "win" if tuned_score > base_score else "loss"


def _win_rate(verdicts: list[str]) -> dict:
    """wins, ties, losses; win_rate = (wins + ties / 2) / n and its standard error over the prompts."""
    n = len(verdicts)
    wins, ties = verdicts.count("win"), verdicts.count("tie")
    outcomes = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[v] for v in verdicts]
    rate = sum(outcomes) / n if n else math.nan
    spread = math.sqrt(sum((o - rate) ** 2 for o in outcomes) / (n - 1) / n) if n > 1 else 0.0
    losses = n - wins - ties
    return {"wins": wins, "ties": ties, "losses": losses, "win_rate": rate, "stderr": spread,
            "without_ties": wins / (wins + losses) if wins + losses else None}


def _paired_interval(base: list[float], tuned: list[float]) -> dict[str, float] | None:
    """The mean change tuned - base over the prompts both sides were scored on, and its 95% interval
    (mean ± 1.96 standard errors of the per-prompt changes); None with fewer than two such prompts."""
    changes = [t - b for b, t in zip(base, tuned) if not (math.isnan(b) or math.isnan(t))]
    n = len(changes)
    if n < 2:
        return None
    mean = sum(changes) / n
    half = 1.96 * math.sqrt(sum((c - mean) ** 2 for c in changes) / (n - 1) / n)
    return {"change": mean, "low": mean - half, "high": mean + half}


def _mean(values: list[float]) -> float | None:
    known = [v for v in values if not math.isnan(v)]
    return sum(known) / len(known) if known else None


def _number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


# ---------------------------------------------------------------------------------------------
# reward models: pairwise accuracy
# ---------------------------------------------------------------------------------------------


def _evaluate_scorer(cfg, data_cfg, before: _Side, after: _Side, seed: int, batch_size: int, say) -> EvalResult:
    from .data import load_rows
    from .models import load_tokenizer, score
    from .rewards import text_of

    rows = load_rows(data_cfg, "pairwise", load_tokenizer(cfg))["eval"]
    conversations = list(rows["prompt"])  # earlier turns kept, as the reward model trained on them
    questions = [_question(c) for c in conversations]
    chosen, rejected = [text_of(r["chosen"]) for r in rows], [text_of(r["rejected"]) for r in rows]
    measures: dict[str, dict[str, float]] = {"pairwise_accuracy": {}}
    pairs: dict[str, list[tuple[float, float]]] = {}
    for side in (before, after):
        say(f"[tunekit] eval: {side.name} = {side.label}")
        model, tokenizer = _load_scorer(cfg, side, seed)
        up = score(model, tokenizer, conversations, chosen, batch_size)
        down = score(model, tokenizer, conversations, rejected, batch_size)
        pairs[side.name] = list(zip(up, down))
        measures["pairwise_accuracy"][side.name] = sum(1.0 if c > r else 0.5 if c == r else 0.0
                                                       for c, r in pairs[side.name]) / max(len(rows), 1)
        del model, tokenizer
        _free()
    samples = [{"prompt": questions[i], "chosen": chosen[i], "rejected": rejected[i],
                **{side: _preference(*pairs[side][i]) for side in ("base", "tuned")},
                "scores": {side: {"chosen": pairs[side][i][0], "rejected": pairs[side][i][1]}
                           for side in ("base", "tuned")}} for i in range(len(rows))]
    return EvalResult(stage=cfg.stage, base=before.label + ("" if before.explicit else " (fresh score head)"),
                      tuned=after.label, rows=len(rows), measures=measures, samples=samples)


def _load_scorer(cfg: Config, side: _Side, seed: int):
    """An rm output as it was saved; else the model with a fresh score head (seeded: the same on every run)."""
    import torch

    from .models import load_reward_model, quiet_score_head

    if side.name == "tuned" or side.explicit and _is_reward_model(side.folder):
        return load_reward_model(side.folder, side.key)
    with quiet_score_head(), torch.random.fork_rng(devices=[]):  # "score.weight newly initialized": the point here
        torch.manual_seed(seed)
        model, tokenizer = _load(cfg, side, head="score")
    return model, tokenizer


def _preference(chosen: float, rejected: float) -> str:
    return f"prefers {'chosen' if chosen > rejected else 'rejected' if rejected > chosen else 'neither'} " \
           f"({chosen:.3g} vs {rejected:.3g})"
