"""compare_runs: one plotly chart of the same metric across finished runs (e.g. dpo vs orpo vs simpo)."""

from __future__ import annotations

import plotly.graph_objects as go

from tunekit.callbacks import read_log


def compare_runs(runs: dict[str, str], key: str = "loss", title: str | None = None) -> go.Figure:
    """``runs`` maps a label to an output folder; returns a figure with one line per run."""
    figure = go.Figure()
    for label, output_dir in runs.items():
        points = [(r["step"], r[key]) for r in read_log(output_dir) if isinstance(r.get(key), (int, float))]
        figure.add_scatter(x=[s for s, _ in points], y=[v for _, v in points], name=label, mode="lines+markers")
    figure.update_layout(title=title or key, xaxis_title="step", yaxis_title=key, height=320,
                         margin=dict(l=40, r=10, t=40, b=30))
    return figure
