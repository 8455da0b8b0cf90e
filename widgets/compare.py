"""compare_runs: one chart of the same metric across finished runs (e.g. dpo vs orpo vs simpo)."""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go

from .static import StaticCopy, png_chart


class RunsChart(StaticCopy, widgets.VBox):
    """A plotly chart of ``key`` with one line per run (``runs``: label -> output folder)."""

    def __init__(self, runs: dict[str, str], key: str = "loss", title: str | None = None):
        from tunekit.callbacks import metric_series, read_log  # imports transformers: not before the backend

        self.key, self.title = key, title or key
        self.series = {label: metric_series(read_log(output_dir), key) for label, output_dir in runs.items()}
        self.figure = go.FigureWidget()
        for label, (steps, values) in self.series.items():
            self.figure.add_scatter(x=steps, y=values, name=label, mode="lines+markers")
        self.figure.update_layout(title=self.title, xaxis_title="step", yaxis_title=key, height=320,
                                  margin=dict(l=40, r=10, t=40, b=30))
        super().__init__([self.figure])

    def static_bundle(self) -> dict:
        chart = png_chart({self.key: self.series}, self.title)
        return {"text/html": f"<img src='data:image/png;base64,{chart}'/>" if chart else f"<p>no {self.key} logged</p>"}


def compare_runs(runs: dict[str, str], key: str = "loss", title: str | None = None) -> RunsChart:
    """``runs`` maps a label to an output folder; ``.show()`` the result, or read ``.series``."""
    return RunsChart(runs, key, title)
