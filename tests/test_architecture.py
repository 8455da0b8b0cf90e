"""The shape of the code: a stage is described once, imports point one way, trainers are extended by
subclassing, and a new stage needs nothing outside its own module and the STAGES table."""

import ast
import re
from pathlib import Path

import pytest

import tunekit as tk
from tunekit.data.formats import KINDS
from tunekit.stages import STAGES
from tunekit.stages.base import Stage

from conftest import ROOT

ENGINE = ROOT / "tunekit"
STAGE_NAMES = set(STAGES)


def _modules(folder: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The tunekit modules ``name`` imports anywhere in its file (module level or inside a function),
    leaving out ``if TYPE_CHECKING:`` blocks, which never run."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules(ENGINE, "tunekit")
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # a package's __init__ runs before its submodules: importing tunekit.x.y also imports tunekit.x
    return {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}


def test_no_import_circle_in_the_engine():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [node, target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if state.get(target) is None:
                visit(target, path + [target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_config_imports_nothing_above_it_and_the_engine_never_imports_the_widgets():
    graph = _graph()
    assert graph["tunekit.config"] <= {"tunekit.errors", "tunekit.templates"}
    assert graph["tunekit.templates"] <= {"tunekit.errors"}
    for name, path in _modules(ENGINE, "tunekit").items():
        assert "widgets" not in {t.split(".")[1] for t in graph[name] if t.count(".")}, name
        assert not re.search(r"^\s*(from|import) (tunekit\.widgets|ipywidgets|plotly)", path.read_text(), re.M), name


def _compared_stage_names(path: Path) -> list[str]:
    """Places where code compares something with a stage name (``x == "ppo"``, ``x in ("rm", "dpo")``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            names = {v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)}
            if names & STAGE_NAMES and ("stage" in ast.unparse(node)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_stage_name_is_compared_outside_the_stages_package():
    """The engine and the panels read the stage's description (bench/'s plain loops, which write each
    stage's math out by hand for comparison, are the one place outside that names stages)."""
    outside = [p for p in (*ENGINE.rglob("*.py"), *(ROOT / "widgets").rglob("*.py"))
               if "stages" not in p.relative_to(ROOT).parts]
    found = [hit for path in outside for hit in _compared_stage_names(path)]
    assert not found, found
    assert "if cfg.stage" not in (ENGINE / "config.py").read_text()


def test_no_method_is_assigned_on_a_trainer_instance():
    pattern = re.compile(r"\btrainer\.(\w+)\s*=(?!=)")
    for path in [*ENGINE.rglob("*.py"), *(ROOT / "widgets").rglob("*.py")]:
        for line in path.read_text().splitlines():
            match = pattern.search(line)
            assert match is None or not callable(getattr(object, match.group(1), None)), f"{path}: {line.strip()}"
            assert "_get_output_dir = " not in line and "training_step = " not in line, f"{path}: {line.strip()}"


def test_every_stage_is_described_once_and_completely():
    assert list(STAGES) == ["pt", "sft", "rm", "ppo", "dpo", "kto", "grpo", "rloo", "distill"]
    for name, stage in STAGES.items():
        assert isinstance(stage, Stage) and stage.name == name
        assert stage.rows in KINDS
        assert stage.head in ("causal_lm", "score")
        assert "loss" in stage.metrics and stage.chart and all(callable(f) for f in (stage.prepare, stage.build,
                                                                                        stage.show, stage.check))
        module = ENGINE / "stages" / f"{name}.py"
        assert module.read_text().count("STAGE = Stage(") == 1
    assert [s.name for s in STAGES.values() if not s.multi_process] == ["ppo"]
    assert [s.name for s in STAGES.values() if s.rewards] == ["ppo", "grpo", "rloo"]
    assert [s.name for s in STAGES.values() if s.samples] == ["ppo", "grpo", "rloo", "distill"]


def test_trainers_are_subclasses_with_the_safety_mixin(tiny):
    from tunekit.safety import SafeTraining

    result = tk.train(tiny, max_steps=1)
    trainer = result.trainer
    assert isinstance(trainer, SafeTraining)
    mro = type(trainer).__mro__
    assert type(trainer).__name__ == "SFTTrainer" and mro[1] is SafeTraining
    assert any(c.__name__ == "SFTTrainer" and c.__module__.startswith("trl") for c in mro[2:])  # trl's, subclassed
    assert "training_step" not in vars(trainer) and "_save_checkpoint" not in vars(trainer)
    assert "_get_output_dir" not in vars(trainer)


def test_a_new_stage_is_one_description(tiny, monkeypatch, tmp_path):
    """A stage that exists only as a ``Stage`` in the table: the config, the run recipe, the plots and
    the panels all take it, with no other change."""
    from tunekit.stages import pt

    echo = Stage(name="echo", rows="text", prepare=pt.prepare, build=pt.build, show=pt.show, packed=lambda cfg: True,
                 metrics=("loss", "grad_norm"), chart=("grad_norm", "learning_rate"))
    monkeypatch.setitem(STAGES, "echo", echo)
    config = {**tiny, "stage": "echo", "dataset": "c4_demo", "max_samples": 20, "cutoff_len": 32, "max_steps": 2,
              "plot_loss": True}
    result = tk.train(config)
    assert Path(result.output_dir, "training_grad_norm.png").is_file()

    from tunekit.widgets import ConfigPanel, DataPanel, TrainPanel

    panel = TrainPanel({**config, "output_dir": str(tmp_path / "panel")}, refresh=0)
    panel.run(show=False)
    assert {"grad_norm", "learning_rate"} <= {trace.name for trace in panel.figure.data}
    assert DataPanel(config).token_spans()[0][0][1]  # a text row: every token carries loss
    assert "echo" in ConfigPanel(config).controls["stage"].options
