"""TrainPanel: ``tk.train`` with a live chart, a progress bar, the last logged values and a Stop button.

    panel = TrainPanel("../examples/sft_lora.yaml", max_steps=30)
    result = panel.run()          # shows the panel in this cell and trains; returns tk.TrainResult

Stop ends training at the next optimizer step, saves a checkpoint there (resume it with
``resume_from_checkpoint: true``) and still returns the model. In JupyterLab 4.4+ with ipykernel 7
the click reaches the kernel while the cell runs (widget messages go to a subshell); where it
cannot, the kernel's interrupt button does the same clean stop (a second interrupt aborts at once).
The chart and the labels are redrawn at most every ``refresh`` seconds, so they cost training nothing
measurable; everything logged is kept in ``panel.history``.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tunekit.config import Config
from tunekit.errors import TunekitError
from tunekit.run import load_config
from tunekit.stages import stage_of

from .static import StaticCopy, escape, png_chart

LOSS_KEYS = ("loss", "eval_loss")  # the first chart; the second shows the stage's own (its ``Stage.chart``)

_NOT_SHOWN = ("step", "epoch", "total_flos", "train_loss")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrainPanel(StaticCopy, widgets.VBox):
    """Train ``config`` (a YAML path, dict or ``Config``; ``overrides`` win) and watch it."""

    def __init__(self, config: Config | str | dict, *, callbacks: list | None = None, reward_fn=None,
                 refresh: float = 1.0, **overrides):
        self.config = load_config(config, **overrides)
        from tunekit.callbacks import StopCallback  # transformers: imported after load_config chose the backend

        self.callbacks = list(callbacks or [])
        self.reward_fn = reward_fn
        self.refresh = refresh
        self.history: list[dict] = []
        self.result = None
        self.stopper = StopCallback(on_request=self._show_stopping)
        cfg = self.config
        self.title = widgets.HTML(
            f"<b>{escape(cfg.stage)}</b> · {escape(cfg.model_name_or_path)} · {escape(cfg.finetuning_type)} "
            f"→ <code>{escape(cfg.output_dir)}</code>")
        self.progress = widgets.IntProgress(value=0, min=0, max=max(1, cfg.max_steps), description="step",
                                            layout=widgets.Layout(width="50%"))
        self.status = widgets.HTML("ready: <code>panel.run()</code> trains")
        self.plan = widgets.HTML()  # the predicted peak memory and time, then what was measured
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger", disabled=True,
                                          tooltip="end training at the next step and save a checkpoint")
        self.stop_button.on_click(lambda _button: self.stop())
        self.values = widgets.HTML()
        self.stage_keys = stage_of(cfg).chart  # a pattern (rewards/*/mean) gets a line per key as it is logged
        self.figure = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=("loss", f"{cfg.stage} metrics")))
        for column, keys in ((1, LOSS_KEYS), (2, [k for k in self.stage_keys if "*" not in k])):
            for key in keys:
                self.figure.add_scatter(x=[], y=[], name=key, mode="lines+markers", row=1, col=column)
        self.figure.update_layout(height=340, margin=dict(l=40, r=10, t=30, b=40),
                                  legend=dict(orientation="h", y=-0.25))
        self.figure.update_xaxes(title_text="step")
        super().__init__([self.title, widgets.HBox([self.progress, self.stop_button]), self.status, self.plan,
                          self.figure, self.values])
        self._follower = _follower(self)
        self._drawn: float | None = None  # when the chart was last drawn (None: never, so the first log is drawn)

    # -- actions -------------------------------------------------------------------------------

    def stop(self) -> None:
        """End training at the next optimizer step (safe to call from any thread)."""
        self.stopper.stop()

    def _show_stopping(self) -> None:
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        self.status.value = "stopping at the end of this step (interrupt again to abort at once)…"

    def run(self, show: bool = True):
        """Show the panel (unless ``show=False``), train, and return the ``tk.TrainResult``."""
        from tunekit.callbacks import StopCallback
        from tunekit.run import plan, run_plan

        if show:
            self.show()
        self.stopper = StopCallback(on_request=self._show_stopping)
        self.history, self.result, self._drawn = [], None, None
        with self.figure.batch_update():
            for trace in self.figure.data:
                trace.x, trace.y = [], []
        self.stop_button.disabled, self.stop_button.description = False, "Stop"
        _answer_clicks_while_busy(self.stop_button)
        self.status.value = "loading the data and the model…"
        try:
            planned = plan(self.config, reward_fn=self.reward_fn)
            if planned.estimate is not None:  # what the run will cost, before the first step
                self.plan.value = f"plan: {escape(planned.estimate.line())}"
            self.result = run_plan(planned, [self._follower, self.stopper, *self.callbacks],
                                   progress=False)  # the panel is the progress bar
            measured = self.result.metrics
            if measured.get("measured_peak_memory_bytes"):
                step = measured.get("measured_seconds_per_step")
                self.plan.value += (f" · measured: {measured['measured_peak_memory_bytes'] / 2**30:.1f} GiB peak"
                                    + (f", {step:.2g} s/step" if step else ""))
            state = self.result.trainer.state
            self.progress.value = state.global_step
            self.status.value = (f"<b>{'stopped' if self.result.stopped else 'done'}</b> at step {state.global_step} "
                                 f"of {state.max_steps} · {_clock(time.time() - self._follower.started)} · saved in "
                                 f"<code>{escape(self.result.output_dir)}</code>")
        except TunekitError as error:
            self.status.value = f"<span style='color:#b00'>{escape(error)}</span>"
            raise
        except KeyboardInterrupt:
            self.status.value = ("aborted; the checkpoints written before are kept in "
                                 f"<code>{escape(self.config.output_dir)}</code>")
            raise
        finally:
            self.stop_button.disabled, self.stop_button.description = True, "Stop"
            self.draw(force=True)
            self.refresh_static()
        return self.result

    # -- drawing -------------------------------------------------------------------------------

    def chart_keys(self) -> list[str]:
        """The stage chart's keys, patterns (``rewards/*/mean``) expanded to the keys logged so far."""
        from tunekit.callbacks import expand_keys

        return expand_keys(self.history, self.stage_keys)

    def series(self, key: str) -> tuple[list, list]:
        from tunekit.callbacks import metric_series

        return metric_series(self.history, key)

    def draw(self, force: bool = False) -> None:
        """Push the logged points to the chart and the table (at most every ``refresh`` seconds)."""
        now = time.monotonic()
        if not force and self._drawn is not None and now - self._drawn < self.refresh:
            return
        self._drawn = now
        traced = {trace.name for trace in self.figure.data}
        for key in self.chart_keys():  # a key matching a pattern gets its line when it is first logged
            if key not in traced:
                self.figure.add_scatter(x=[], y=[], name=key, mode="lines+markers", row=1, col=2)
        with self.figure.batch_update():
            for trace in self.figure.data:
                trace.x, trace.y = self.series(trace.name)
        shown: dict = {}
        for record in self.history:  # the latest training values, then the latest evaluation's
            if "loss" in record or any(k.startswith("eval_") for k in record):
                shown.update({k: v for k, v in record.items() if isinstance(v, (int, float)) and k not in _NOT_SHOWN
                              and not k.endswith(("_runtime", "_per_second", "num_tokens"))})
        if shown:
            cells = "".join(f"<td style='padding:0 8px'><b>{escape(k)}</b><br>{v:.4g}</td>" for k, v in shown.items())
            self.values.value = f"<table><tr><td>last logged:</td>{cells}</tr></table>"

    def static_bundle(self) -> dict:
        chart = png_chart({"loss": {k: self.series(k) for k in LOSS_KEYS},
                           f"{self.config.stage} metrics": {k: self.series(k) for k in self.chart_keys()}},
                          f"{self.config.stage} · {self.config.output_dir}")
        image = f"<img src='data:image/png;base64,{chart}'/>" if chart else ""
        return {"text/html": f"<div>{self.title.value}<br>{self.status.value}<br>{self.plan.value}<br>{image}"
                             f"{self.values.value}</div>"}


def _answer_clicks_while_busy(button: widgets.Button) -> None:
    """Let the button's clicks run while this cell is still training.

    JupyterLab 4.4+ sends widget messages on a kernel subshell, which ipykernel 7 runs on its own
    thread even while the main shell is busy. But ipykernel 7.4 routes a comm's incoming messages
    to the shell that last *sent* on it (here the busy main shell, which just enabled the button),
    unless the comm has no such record. Dropping the record lets the frontend's subshell choice
    stand; on kernels without subshells nothing changes and the interrupt button is the way to stop.
    """
    comm = getattr(button, "comm", None)
    if comm is not None and "_reply_subshell_id" in vars(comm):
        del comm._reply_subshell_id


def _follower(panel: TrainPanel):
    """A ``TrainerCallback`` that feeds the panel: progress on every step, chart points on every log.
    (Made here, so that importing the panels imports no transformers before the backend is chosen.)"""
    from transformers import TrainerCallback

    class Follow(TrainerCallback):
        def __init__(self, panel: TrainPanel):
            self.panel = panel
            self.started = time.time()
            self.first_step = 0
            self.shown: float | None = None  # when the progress was last shown (None: not yet)

        def on_train_begin(self, args, state, control, **kwargs):
            self.started, self.first_step, self.shown = time.time(), state.global_step, None
            self.panel.progress.max = max(1, state.max_steps)
            self.panel.progress.value = state.global_step
            self.panel.status.value = f"training: step {state.global_step} of {state.max_steps}"

        def on_step_end(self, args, state, control, **kwargs):
            now = time.monotonic()
            recent = self.shown is not None and now - self.shown < self.panel.refresh
            if recent and state.global_step < state.max_steps:
                return
            self.shown = now
            panel, elapsed = self.panel, time.time() - self.started
            done = state.global_step - self.first_step
            left = elapsed / done * (state.max_steps - state.global_step) if done else 0
            panel.progress.value = state.global_step
            if not panel.stopper.requested.is_set():
                panel.status.value = (f"training: step {state.global_step} of {state.max_steps} · "
                                      f"{_clock(elapsed)} elapsed · about {_clock(left)} left")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                self.panel.history.append({"step": state.global_step, **logs})
                self.panel.draw()

    return Follow(panel)
