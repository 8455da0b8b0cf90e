"""ChatPanel: ask a model something, with sampling controls; optionally two models side by side.

    ChatPanel(model, tokenizer).show()                              # one model
    ChatPanel(model, tokenizer, compare_adapter=True).show()        # base (adapter off) vs adapter on
    ChatPanel({"before": (base, tok), "after": (tuned, tok)}).show()

Every side answers the same prompt with the same settings and seed, so differences come from the
weights alone. ``panel.ask("Who are you?")`` does what the button does and returns the answers.
"""

from __future__ import annotations

import contextlib

import ipywidgets as widgets

from tunekit.generation import generate

from .static import StaticCopy, escape


class ChatPanel(StaticCopy, widgets.VBox):
    def __init__(self, model, tokenizer=None, *, compare_adapter: bool = False, prompt: str = "Who are you?",
                 system: str | None = None, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 42):
        if isinstance(model, dict):
            self.sides = {label: (m, t, contextlib.nullcontext) for label, (m, t) in model.items()}
        elif compare_adapter:
            if not hasattr(model, "disable_adapter"):
                raise ValueError("compare_adapter=True needs a peft model (one trained with finetuning_type: lora)")
            self.sides = {"base (adapter off)": (model, tokenizer, model.disable_adapter),
                          "with adapter": (model, tokenizer, contextlib.nullcontext)}
        else:
            self.sides = {"answer": (model, tokenizer, contextlib.nullcontext)}
        self.system = system
        self.prompt = widgets.Textarea(value=prompt, placeholder="your message", layout=widgets.Layout(width="520px"))
        self.max_new_tokens = widgets.IntSlider(value=max_new_tokens, min=8, max=512, step=8, description="max tokens")
        self.temperature = widgets.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.05,
                                               description="temperature")
        self.top_p = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top_p")
        self.seed = widgets.IntText(value=seed, description="seed", layout=widgets.Layout(width="160px"))
        self.ask_button = widgets.Button(description="Ask", icon="paper-plane", button_style="primary")
        self.ask_button.on_click(lambda _button: self.ask())
        self.answers = widgets.HTML("<small>temperature 0 answers greedily; above 0 it samples</small>")
        self.exchanges: list[dict] = []
        super().__init__([self.prompt, widgets.HBox([self.max_new_tokens, self.temperature]),
                          widgets.HBox([self.top_p, self.seed, self.ask_button]), self.answers])

    def ask(self, prompt: str | None = None) -> dict[str, str]:
        """Answer ``prompt`` (default: the text box) on every side; returns {side: answer}."""
        if prompt is not None:
            self.prompt.value = prompt
        self.ask_button.disabled = True
        try:
            answers = {}
            for label, (model, tokenizer, context) in self.sides.items():
                with context():
                    answers[label] = generate(model, tokenizer, self.prompt.value, max_new_tokens=self.max_new_tokens.value,
                                              temperature=self.temperature.value, top_p=self.top_p.value,
                                              system=self.system, seed=self.seed.value)
        finally:
            self.ask_button.disabled = False
        self.exchanges.append({"prompt": self.prompt.value, **answers})
        columns = "".join(f"<div style='flex:1;min-width:0;background:#f6f8fa;padding:6px;border-radius:6px'>"
                          f"<b>{escape(label)}</b><div style='white-space:pre-wrap'>{escape(answer)}</div></div>"
                          for label, answer in answers.items())
        self.answers.value = (f"<div><b>you</b>: {escape(self.prompt.value)}</div>"
                              f"<div style='display:flex;gap:10px'>{columns}</div>")
        self.refresh_static()
        return answers

    def static_bundle(self) -> dict:
        return {"text/html": self.answers.value}
