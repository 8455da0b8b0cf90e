"""EvalPanel: did the stage work? A ``tk.evaluate`` result as a table, a chart and the answers side by side.

    EvalPanel(tk.evaluate("../examples/sft_lora.yaml")).show()
    EvalPanel("saves/sft_lora/eval").show()      # a folder holding eval_results.json / eval_samples.jsonl

The table gives each measure before (base) and after (tuned) with the change, green where it got
better (lower is better for the measures marked ↓, e.g. perplexity), and the win rate with its
wins / ties / losses and the judge. The chart has one subplot per measure, each on its own scale
(perplexity in the tens and accuracy in 0..1 stay readable), and the win rate as a bar against a
dashed 0.5 line (a tie). Below, the held-out answers: prompt, reference, base and tuned answers with
their scores and the verdict; browse with prev / next and keep only wins, ties or losses.
The saved notebook keeps the table, the measures as HTML bars and the first few answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tunekit.evaluation import EvalResult

from .static import StaticCopy, escape

COLOURS = {"base": "#9aa0a6", "tuned": "#1f77b4"}
VERDICT_COLOUR = {"win": "#2e7d32", "tie": "#757575", "loss": "#c62828"}
STATIC_SAMPLES = 3  # answers kept in the saved notebook's copy
BOX = "flex:1;min-width:0;background:#f6f8fa;padding:6px;border-radius:6px"


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _text(value) -> str:
    """Escaped text of an answer or prompt (a list of messages is shown as JSON)."""
    return escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1))


class EvalPanel(StaticCopy, widgets.VBox):
    """``result``: an ``EvalResult`` or the folder ``EvalResult.save`` wrote."""

    def __init__(self, result: EvalResult | str | Path):
        self.result = result if isinstance(result, EvalResult) else EvalResult.load(result)
        self.index = 0  # position in ``self.shown`` (the samples that pass the filter)
        self.shown: list[int] = list(range(len(self.result.samples)))
        self.table = widgets.HTML(self.render_table())
        self.figure = self._chart()
        self.prev_button = widgets.Button(description="◀ prev", layout=widgets.Layout(width="80px"))
        self.next_button = widgets.Button(description="next ▶", layout=widgets.Layout(width="80px"))
        self.prev_button.on_click(lambda _b: self.go(self.index - 1))
        self.next_button.on_click(lambda _b: self.go(self.index + 1))
        self.verdict = widgets.Dropdown(options=["all", "win", "tie", "loss"], value="all", description="verdict",
                                        layout=widgets.Layout(width="180px"))
        self.verdict.observe(lambda change: self.filter(change["new"]), names="value")
        self.position = widgets.HTML()
        self.sample = widgets.HTML()
        super().__init__([self.table, self.figure,
                          widgets.HBox([self.prev_button, self.next_button, self.verdict, self.position]),
                          self.sample])
        self.go(0)

    # -- browsing ------------------------------------------------------------------------------

    def go(self, index: int) -> None:
        """Show the ``index``-th sample that passes the filter (wrapping)."""
        total = len(self.shown)
        if not total:
            what = "samples" if self.verdict.value == "all" else f"sample with verdict {self.verdict.value}"
            self.position.value, self.sample.value = f"&nbsp;no {what}", ""
        else:
            self.index = index % total
            number = self.shown[self.index]
            self.position.value = f"&nbsp;sample {self.index + 1} of {total} (#{number + 1})"
            self.sample.value = self.render_sample(self.result.samples[number])
        self.refresh_static()

    def filter(self, verdict: str) -> None:
        """Keep the samples whose verdict is ``verdict`` ("all": every sample) and show the first."""
        if self.verdict.value != verdict:
            self.verdict.value = verdict  # its observer comes back here
            return
        self.shown = [i for i, s in enumerate(self.result.samples) if verdict == "all" or s.get("verdict") == verdict]
        self.go(0)

    # -- rendering -----------------------------------------------------------------------------

    def render_table(self) -> str:
        r = self.result
        cell = "style='padding:2px 10px;text-align:right'"
        rows = []
        for name, sides in r.measures.items():
            base, tuned = sides.get("base"), sides.get("tuned")
            lower = name in r.lower_is_better
            change, colour = "", "inherit"
            if base is not None and tuned is not None:
                change = f"{tuned - base:+.4g}"
                better = tuned < base if lower else tuned > base
                colour = "inherit" if tuned == base else "#2e7d32" if better else "#c62828"
            mark = " <small title='lower is better'>↓ lower is better</small>" if lower else ""
            span = r.intervals.get(name)
            span = f"[{span['low']:+.3g}, {span['high']:+.3g}]" if span else ""
            rows.append(f"<tr><td style='padding:2px 10px'>{escape(name)}{mark}</td><td {cell}>{_num(base)}</td>"
                        f"<td {cell}>{_num(tuned)}</td>"
                        f"<td {cell}><span style='color:{colour}'>{change}</span></td><td {cell}>{span}</td></tr>")
        head = "".join(f"<th {cell}>{h}</th>" for h in ("base", "tuned", "change", "95% interval"))
        html = (f"<div><b>{escape(r.stage)}</b>: {escape(r.base)} → <code>{escape(r.tuned)}</code> "
                f"on {r.rows} held-out rows</div><table><tr><th style='padding:2px 10px'>measure</th>{head}</tr>"
                f"{''.join(rows)}</table>")
        if r.win_rate:
            w = r.win_rate
            apart = "" if w.get("without_ties") is None else f"; ties apart <b>{w['without_ties']:.3f}</b>"
            html += (f"<div>win rate of tuned over base: <b>{w['win_rate']:.3f}</b> ± {w.get('stderr', 0):.3f}{apart} "
                     f"({w['wins']} wins, {w['ties']} ties, {w['losses']} losses; judged by "
                     f"<code>{escape(w['judge'])}</code>)</div>")
        return html

    def render_sample(self, sample: dict) -> str:
        verdict = sample.get("verdict")
        badge = (f" <span style='background:{VERDICT_COLOUR.get(verdict, '#757575')};color:white;padding:1px 6px'>"
                 f"{escape(verdict)}</span>" if verdict else "")
        prompt = _text(sample.get("prompt", ""))
        parts = [f"<div><b>prompt</b>{badge}<div style='white-space:pre-wrap'>{prompt}</div></div>"]
        if sample.get("reference") is not None:
            parts.append(f"<div><b>reference</b><div style='white-space:pre-wrap;color:#555'>"
                         f"{_text(sample['reference'])}</div></div>")
        columns = []
        for side in ("base", "tuned"):
            scores = (sample.get("scores") or {}).get(side) or {}
            shown = " · ".join(f"{escape(k)} {_num(v)}" for k, v in scores.items())
            columns.append(f"<div style='{BOX}'><b>{side}</b> <small>{shown}</small>"
                           f"<div style='white-space:pre-wrap'>{_text(sample.get(side, ''))}</div></div>")
        return "".join(parts) + f"<div style='display:flex;gap:10px'>{''.join(columns)}</div>"

    def _chart(self) -> go.FigureWidget:
        r = self.result
        titles = [f"{name} ↓" if name in r.lower_is_better else name for name in r.measures]
        titles += ["win rate"] if r.win_rate else []
        figure = go.FigureWidget(make_subplots(rows=1, cols=max(1, len(titles)), subplot_titles=titles or None))
        for column, (name, sides) in enumerate(r.measures.items(), start=1):
            for side in ("base", "tuned"):
                figure.add_bar(x=[side], y=[sides.get(side)], name=side, legendgroup=side, showlegend=column == 1,
                               marker_color=COLOURS[side], row=1, col=column)
        if r.win_rate:
            column = len(titles)
            figure.add_bar(x=["tuned vs base"], y=[r.win_rate["win_rate"]], name="win rate", showlegend=False,
                           marker_color=COLOURS["tuned"], row=1, col=column,
                           error_y=dict(type="data", array=[r.win_rate.get("stderr", 0)]))
            figure.add_hline(y=0.5, line_dash="dash", line_color="#757575", row=1, col=column)
            figure.update_yaxes(range=[0, 1], row=1, col=column)
        figure.update_layout(height=300, margin=dict(l=40, r=10, t=40, b=30), legend=dict(orientation="h", y=-0.15))
        return figure

    def static_bundle(self) -> dict:
        r = self.result
        bars = []
        for name, sides in r.measures.items():
            top = max((abs(v) for v in sides.values() if v is not None), default=0) or 1
            lines = "".join(f"<div><span style='display:inline-block;width:44px'>{side}</span><span style='display:"
                            f"inline-block;height:10px;width:{200 * abs(sides.get(side) or 0) / top:.0f}px;"
                            f"background:{COLOURS[side]}'></span> {_num(sides.get(side))}</div>"
                            for side in ("base", "tuned"))
            bars.append(f"<div style='margin:4px 12px 4px 0'><small><b>{escape(name)}</b></small>{lines}</div>")
        samples = [self.render_sample(s) for s in r.samples[:STATIC_SAMPLES]]
        more = len(r.samples) - len(samples)
        rest = f"<small>… {more} more in <code>eval_samples.jsonl</code></small>" if more > 0 else ""
        answers = "<hr>".join(samples)
        return {"text/html": f"<div>{self.table.value}<div style='display:flex;flex-wrap:wrap'>{''.join(bars)}</div>"
                             f"{answers}{rest}</div>"}
