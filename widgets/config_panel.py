"""ConfigPanel: a stage's main keys as form controls, checked as you type, saved as YAML the CLI runs.

    panel = ConfigPanel("../examples/dpo_lora.yaml").show()
    cfg = panel.config            # the validated tunekit Config (raises ConfigError while invalid)
    panel.save("my_dpo.yaml")     # then: tunekit train my_dpo.yaml

Keys the form does not show are kept as they were in the source.
"""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as widgets
import yaml

from tunekit.config import FINETUNING_TYPES, PREF_LOSSES, Config
from tunekit.errors import ConfigError
from tunekit.run import load_config
from tunekit.stages import STAGES

from .static import StaticCopy, escape

# Keys some stages have (pref_beta, pref_loss, num_generations, ...): shown only for a stage that names
# them in its ``Stage.config_keys``.
STAGE_KEYS = tuple(dict.fromkeys(key for stage in STAGES.values() for key in stage.config_keys))


def _controls() -> dict[str, widgets.Widget]:
    from tunekit.data.registry import read_registry
    from tunekit.models import ALIASES

    wide = widgets.Layout(width="420px")
    style = {"description_width": "170px"}
    return {
        "stage": widgets.Dropdown(options=list(STAGES), description="stage", style=style),
        "model_name_or_path": widgets.Combobox(options=list(ALIASES), description="model_name_or_path",
                                               style=style, layout=wide),
        "dataset": widgets.Combobox(options=sorted(read_registry(None)), description="dataset", style=style,
                                    layout=wide, placeholder="comma list of dataset_info.json names"),
        "finetuning_type": widgets.Dropdown(options=FINETUNING_TYPES, description="finetuning_type", style=style),
        "lora_rank": widgets.IntText(description="lora_rank", style=style),
        "learning_rate": widgets.FloatText(description="learning_rate", style=style),
        "max_steps": widgets.IntText(description="max_steps (-1: epochs)", style=style),
        "per_device_train_batch_size": widgets.IntText(description="per_device_train_batch_size", style=style),
        "cutoff_len": widgets.IntText(description="cutoff_len", style=style),
        "pref_beta": widgets.FloatText(description="pref_beta", style=style),
        "pref_loss": widgets.Dropdown(options=PREF_LOSSES, description="pref_loss", style=style),
        "num_generations": widgets.IntText(description="num_generations", style=style),
        "reward_funcs": widgets.Text(description="reward_funcs", style=style,  # its own layout: it is hidden
                                     layout=widgets.Layout(width="420px"),  # for other stages, not the rest
                                     placeholder="accuracy, format, length or module:function"),
        "teacher_model": widgets.Text(description="teacher_model", style=style,  # its own layout, as reward_funcs'
                                      layout=widgets.Layout(width="420px"),
                                      placeholder="a model folder, a tunekit output or a hub id"),
        "lmbda": widgets.FloatText(description="lmbda (on-policy share)", style=style),
        "output_dir": widgets.Text(description="output_dir", style=style, layout=wide),
    }


class ConfigPanel(StaticCopy, widgets.VBox):
    """A form over ``source`` (a YAML path, dict or ``Config``); ``overrides`` win over the source."""

    def __init__(self, source: Config | str | os.PathLike | dict, **overrides):
        start = load_config(source, **overrides)  # a bad source fails here, with its one-line message
        self._raw = start.to_dict()
        self.controls = _controls()
        for key, control in self.controls.items():
            control.value = "" if getattr(start, key) is None else getattr(start, key)  # an empty box: not set
            control.observe(lambda _change: self._check(), names="value")
        self.message = widgets.HTML()
        self.plan = widgets.HTML()  # the predicted peak memory and time of the form's run (tunekit/estimate.py)
        self.path = widgets.Text(value="my_config.yaml", description="file", layout=widgets.Layout(width="300px"))
        self.save_button = widgets.Button(description="Save YAML", icon="save")
        self.save_button.on_click(lambda _button: self._save_clicked())
        super().__init__([*self.controls.values(), widgets.HBox([self.path, self.save_button]), self.message,
                          self.plan])
        self._check()

    @property
    def config(self) -> Config:
        """The validated config of the form's current values (raises ``ConfigError`` while invalid)."""
        raw = dict(self._raw)
        raw.update(raw.pop("training_args", {}))
        raw.update({key: None if control.value == "" else control.value for key, control in self.controls.items()})
        return load_config(raw)

    def save(self, path: str | os.PathLike) -> str:
        """Write the config as YAML (the form's keys, then every other key that differs from its default). Rows given
        in memory (``data=``) are written beside it, in ``<name>_rows/``, and the YAML names that file."""
        from tunekit.data.sources import write_memory_rows

        cfg, path = self.config, Path(path)
        written = write_memory_rows([*cfg.datasets, *cfg.eval_datasets], path.parent / f"{path.stem}_rows")
        text = self.yaml()
        for name, file in written.items():
            text = text.replace(name, file)
        path.write_text(f"# tunekit train {path.name}\n" + text, encoding="utf-8")
        return str(path)

    def yaml(self) -> str:
        """The YAML that ``save`` writes (raises ``ConfigError`` while the form is invalid)."""
        cfg = self.config
        data = {key: getattr(cfg, key) for key, control in self.controls.items() if control.layout.display != "none"}
        data.update(yaml.safe_load(cfg.to_yaml()) or {})
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def _check(self) -> None:
        own = STAGES[self.controls["stage"].value].config_keys
        for key in STAGE_KEYS:
            self.controls[key].layout.display = None if key in own else "none"
        try:
            cfg = self.config
        except ConfigError as error:
            self.message.value = f"<span style='color:#b00'>✗ {escape(error)}</span>"
            self.save_button.disabled = True
        else:
            self.message.value = f"<span style='color:#2e7d32'>✓ valid {escape(cfg.stage)} config</span>"
            self.save_button.disabled = False
            self.plan.value = self._plan_line(cfg)
        self.refresh_static()

    def _plan_line(self, cfg) -> str:
        """The plan in one line: ``plan: about 3.4 GiB peak, 7 s/step here, 24 min for 200 steps``."""
        from tunekit.errors import TunekitError
        from tunekit.estimate import estimate, sample_length

        stage = STAGES[cfg.stage]
        try:  # the rows' lengths and the model's shape are read once, then cached (tunekit/estimate.py)
            length, rows = sample_length(cfg, stage)
            predicted = estimate(cfg, stage, length=length, rows=rows, gpus=False)
        except TunekitError as error:
            return f"<span style='color:#b00'>plan: {escape(error)}</span>"
        colour = "#2e7d32" if predicted.fits else "#b00"
        return f"<span class='tk-plan' style='color:{colour}'>plan: {escape(predicted.line())}</span>"

    def _save_clicked(self) -> None:
        path = self.save(self.path.value)
        self.message.value = (f"saved <code>{escape(path)}</code>; run it with "
                              f"<code>tunekit train {escape(path)}</code>")

    def static_bundle(self) -> dict:
        try:
            text = self.yaml()
        except ConfigError as error:
            text = f"# invalid: {error}"
        return {"text/html": f"<pre>{escape(text)}</pre>{self.message.value}<br>{self.plan.value}"}
