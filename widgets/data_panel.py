"""DataPanel: look at a stage's data before training on it.

    DataPanel("../examples/sft_lora.yaml").show()
    DataPanel("../examples/sft_lora.yaml", data=df)     # rows in memory: a DataFrame, a list of dicts, a Dataset

Browse the rows (prev / next / random / search); each is shown as a conversation and as the tokens
the model sees, green where the token carries loss (``labels`` != -100) and grey where it is only
context. Preference rows show chosen and rejected side by side; KTO rows their label. A histogram
of token lengths marks ``cutoff_len`` and says how many rows it truncates; above it, what was read: each set's
format (as its dataset_info.json entry says, or found from its columns) and its rows.
"""

from __future__ import annotations

import json
import random

import ipywidgets as widgets
import plotly.graph_objects as go

from tunekit.config import Config
from tunekit.data import IGNORE_INDEX, load_rows, read_words, row_length
from tunekit.data.tools import parse_tools
from tunekit.run import load_config
from tunekit.stages import stage_of

from .static import StaticCopy, escape

LOSS_STYLE = "background:#b7ebb0"  # a token the loss is computed on
CONTEXT_STYLE = "background:#e4e4e4;color:#555"  # a token the model only reads
REASONING_STYLE = "background:#e1d5f5"  # an answer's reasoning (<think> ... </think>), shown apart
REASONING_PART = " data-part='reasoning'"
ROLE_COLOUR = {"system": "#f3e8ff", "user": "#e8f0fe", "assistant": "#e9f7ef", "tool": "#fff4e5",
               "function_call": "#d7f0e0"}
MAX_LENGTH_ROWS = 2000  # the histogram counts at most this many rows


class DataPanel(StaticCopy, widgets.VBox):
    """Rows of ``config``'s data set (``split`` "train" or "eval"), as its stage will see them."""

    def __init__(self, config: Config | str | dict, tokenizer=None, split: str = "train", **overrides):
        from tunekit.models import load_tokenizer

        self.config = cfg = load_config(config, **overrides)
        self.stage = stage_of(cfg)
        self.kind = self.stage.rows  # text, chat, pairwise or unpaired
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)
        self.rows = load_rows(cfg, self.kind)[split]
        self.read = read_words(self.rows)  # per set: where from, the format it was read as, its rows
        self.index = 0
        self.position = widgets.HTML()
        buttons = []
        for label, action in (("◀ prev", lambda: self.go(self.index - 1)), ("next ▶", lambda: self.go(self.index + 1)),
                              ("random", lambda: self.go(random.randrange(len(self.rows))))):
            button = widgets.Button(description=label, layout=widgets.Layout(width="80px"))
            button.on_click(lambda _b, action=action: action())
            buttons.append(button)
        self.prev_button, self.next_button, self.random_button = buttons
        self.query = widgets.Text(placeholder="search the rows", continuous_update=False,
                                  layout=widgets.Layout(width="220px"))
        self.search_button = widgets.Button(description="search", layout=widgets.Layout(width="80px"))
        self.search_button.on_click(lambda _b: self.search(self.query.value))
        self.query.observe(lambda change: self.search(change["new"]), names="value")  # on Enter
        self.view = widgets.HTML()
        self.tokens = widgets.HTML()
        self.lengths = [row_length(self.tokenizer, self.rows[i]) for i in range(min(len(self.rows), MAX_LENGTH_ROWS))]
        self.truncated = sum(length > cfg.cutoff_len for length in self.lengths)
        self.histogram = self._histogram()
        self.summary = widgets.HTML(self._summary())
        super().__init__([widgets.HBox([*buttons, self.query, self.search_button, self.position]), self.view,
                          self.tokens, self.summary, self.histogram])
        self.go(0)

    # -- navigation ----------------------------------------------------------------------------

    def go(self, index: int) -> None:
        self.index = index % len(self.rows)
        row = self.rows[self.index]
        self.position.value = f"&nbsp;row {self.index + 1} of {len(self.rows)}"
        self.view.value = self.render_row(row)
        self.tokens.value = self.render_tokens(row)
        self.refresh_static()

    def search(self, text: str) -> bool:
        """Go to the next row (after the current one, wrapping) that contains ``text``."""
        needle = text.strip().lower()
        if not needle:
            return False
        for step in range(1, len(self.rows) + 1):
            index = (self.index + step) % len(self.rows)
            if needle in json.dumps(self.rows[index], ensure_ascii=False).lower():
                self.go(index)
                return True
        self.position.value = f"&nbsp;no row contains {escape(text)!s}"
        return False

    # -- what one row trains on ----------------------------------------------------------------

    def encoded(self, row: dict) -> list[tuple[str, dict]]:
        """(title, ``input_ids`` / ``labels``) of each sequence the stage builds from ``row``."""
        return self.stage.show(self.config, self.tokenizer, row)  # the stage says what its rows train on

    def token_spans(self, row: dict | None = None) -> list[list[tuple[str, bool]]]:
        """For each sequence of ``row`` (default: the current one): (token text, carries loss) pairs."""
        row = self.rows[self.index] if row is None else row
        return [self._spans(encoded) for _, encoded in self.encoded(row)]

    def reasoning_spans(self, row: dict | None = None) -> list[list[bool]]:
        """For each sequence of ``row`` (default: the current one): which tokens are an answer's reasoning."""
        row = self.rows[self.index] if row is None else row
        return [list(encoded.get("reasoning") or [False] * len(encoded["input_ids"])) for _, encoded in self.encoded(row)]

    def _spans(self, encoded: dict) -> list[tuple[str, bool]]:
        return [(self.tokenizer.decode([t]), label != IGNORE_INDEX)
                for t, label in zip(encoded["input_ids"], encoded["labels"])]

    # -- rendering -----------------------------------------------------------------------------

    def render_row(self, row: dict) -> str:
        if row.get("text") is not None:  # pt's texts, and an sft set in trl's language-modelling format
            return f"<div style='white-space:pre-wrap;max-height:220px;overflow:auto'>{escape(row['text'])}</div>"
        if self.kind in ("chat", "prompt"):
            return _tools(row.get("tools")) + _conversation(row["messages"])
        if self.kind == "pairwise":
            sides = "".join(f"<div style='flex:1;min-width:0'><b>{side}</b>{_conversation(row[side])}</div>"
                            for side in ("chosen", "rejected"))
            return f"{_conversation(row['prompt'])}<div style='display:flex;gap:12px'>{sides}</div>"
        badge = ("<span style='background:#2e7d32;color:white;padding:1px 6px'>label: true (desirable)</span>"
                 if row["label"] else
                 "<span style='background:#c62828;color:white;padding:1px 6px'>label: false (undesirable)</span>")
        return f"{_conversation(row['prompt'] + row['completion'])}{badge}"

    def render_tokens(self, row: dict) -> str:
        parts = []
        for title, encoded in self.encoded(row):
            spans = self._spans(encoded)
            thoughts = encoded.get("reasoning") or [False] * len(spans)
            tokens = "".join(
                f"<span class='{'tk-loss' if loss else 'tk-context'}'{REASONING_PART if thought else ''} "
                f"style='{REASONING_STYLE if thought else LOSS_STYLE if loss else CONTEXT_STYLE};"
                f"margin:0 1px;border-radius:2px'>{escape(text)}</span>" for (text, loss), thought in zip(spans, thoughts))
            trained = sum(loss for _, loss in spans)
            reasoning = f", {sum(thoughts)} of them reasoning" if any(thoughts) else ""
            parts.append(f"<div style='flex:1;min-width:0'><small><b>{escape(title)}</b>: {len(spans)} tokens, "
                         f"{trained} carry loss{reasoning}</small><div style='white-space:pre-wrap;font-family:monospace;"
                         f"font-size:11px;max-height:240px;overflow:auto'>{tokens}</div></div>")
        legend = (f"<small>tokens: <span style='{LOSS_STYLE}'>&nbsp;carries loss&nbsp;</span> "
                  f"<span style='{REASONING_STYLE}'>&nbsp;reasoning&nbsp;</span> "
                  f"<span style='{CONTEXT_STYLE}'>&nbsp;context only&nbsp;</span></small>")
        return f"{legend}<div style='display:flex;gap:12px'>{''.join(parts)}</div>"

    def _summary(self) -> str:
        cfg, counted = self.config, len(self.lengths)
        read = "".join(f"<div class='tk-read'>read {escape(line)}</div>" for line in self.read)
        if self.kind == "text" and self.stage.packed(cfg):
            return (f"{read}{counted} texts, {sum(self.lengths)} tokens, packed into blocks of cutoff_len="
                    f"{cfg.cutoff_len}: nothing is cut")
        return (f"{read}<b>{self.truncated}</b> of {counted} rows are longer than cutoff_len={cfg.cutoff_len} and get "
                f"truncated; the longest has {max(self.lengths)} tokens")

    def _histogram(self) -> go.FigureWidget:
        figure = go.FigureWidget(go.Histogram(x=self.lengths, nbinsx=40, name="rows"))
        figure.add_vline(x=self.config.cutoff_len, line_dash="dash", line_color="red",
                         annotation_text=f"cutoff_len={self.config.cutoff_len}")
        figure.update_layout(height=240, margin=dict(l=40, r=10, t=30, b=30), title="tokens per row",
                             xaxis_title="tokens", yaxis_title="rows", bargap=0.05)
        return figure

    def static_bundle(self) -> dict:
        return {"text/html": f"<div>{self.position.value}{self.view.value}{self.tokens.value}{self.summary.value}</div>"}


def _conversation(messages: list[dict]) -> str:
    return "".join(
        f"<div style='background:{ROLE_COLOUR.get(m['role'], '#eee')};padding:4px 8px;margin:3px 0;border-radius:6px;"
        f"white-space:pre-wrap'><b>{escape(m['role'])}</b>: {escape(m['content'])}</div>" for m in messages)


def _tools(tools) -> str:
    """The functions a tool-calling row offers the model (its ``tools`` column), one line each."""
    schemas = parse_tools(tools)
    if not schemas:
        return ""
    items = "".join(f"<li><code>{escape(t.get('name'))}</code> {escape(t.get('description', ''))}</li>" for t in schemas)
    return (f"<div class='tk-tools' style='background:#fafafa;border:1px solid #ddd;padding:4px 8px;border-radius:6px'>"
            f"<b>tools</b> (the model sees them in its prompt)<ul style='margin:2px 0'>{items}</ul></div>")

