"""The notebook panels in plain pytest: build them from tiny runs, click, and check their state."""

import os
import re
import signal
from pathlib import Path

import pytest
import yaml
from transformers import TrainerCallback

import tunekit as tk
from tunekit.widgets import ChatPanel, ConfigPanel, DataPanel, TrainPanel, compare_runs

from conftest import ROOT, run_cli

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class AtStep(TrainerCallback):
    """Calls ``action(state)`` at the end of every step; records the chart's length at every log."""

    def __init__(self, panel=None, action=None):
        self.panel, self.action, self.lengths = panel, action, []

    def on_step_end(self, args, state, control, **kwargs):
        if self.action:
            self.action(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.panel is not None:
            self.lengths.append(len(self.panel.figure.data[0].x))


# -- TrainPanel ---------------------------------------------------------------------------------


def test_chart_traces_grow_while_training_and_show_the_stage_metrics(tiny):
    panel = TrainPanel(tiny, refresh=0, max_steps=6)
    watcher = AtStep(panel)
    panel.callbacks.append(watcher)
    result = panel.run(show=False)
    assert not result.stopped and result.trainer.state.global_step == 6
    assert watcher.lengths[:6] == [1, 2, 3, 4, 5, 6]  # one more loss point after every logged step
    names = [trace.name for trace in panel.figure.data]
    assert names[:2] == ["loss", "eval_loss"] and "mean_token_accuracy" in names
    accuracy = next(t for t in panel.figure.data if t.name == "mean_token_accuracy")
    assert len(accuracy.x) == 6
    assert panel.progress.value == panel.progress.max == 6
    assert "done" in panel.status.value and "loss" in panel.values.value
    assert panel.stop_button.disabled  # nothing to stop any more


def test_grpo_chart_gets_a_line_per_reward_function_as_it_is_logged(tiny):
    panel = TrainPanel(tiny, refresh=0, stage="grpo", dataset="math_demo", max_samples=16, max_new_tokens=8,
                       cutoff_len=256, num_generations=2, per_device_train_batch_size=4, max_steps=2,
                       reward_funcs="accuracy,format,length")
    panel.run(show=False)
    lines = {trace.name: trace for trace in panel.figure.data}
    for key in ("reward", "rewards/accuracy/mean", "rewards/format/mean", "rewards/length/mean", "reward_group_std",
                "kl"):
        assert list(lines[key].x) == [1, 2], key
    assert "rewards/*/mean" not in lines
    assert panel.chart_keys() == ["reward", "rewards/accuracy/mean", "rewards/format/mean", "rewards/length/mean",
                                  "reward_group_std", "kl"]


@pytest.mark.parametrize("uptime", [5.0, 10**6], ids=["booted-seconds-ago", "up-for-days"])
def test_chart_redraws_are_throttled_but_the_end_is_always_drawn(tiny, monkeypatch, uptime):
    """time.monotonic() counts from boot: on a machine up for less than ``refresh`` seconds the first log
    must still be drawn (it was not, once). The clock is pinned to both cases."""
    from tunekit.widgets import train_panel

    clock = iter(range(10**6))
    monkeypatch.setattr(train_panel.time, "monotonic", lambda: uptime + next(clock) * 1e-3)
    panel = TrainPanel(tiny, refresh=3600, max_steps=5)
    watcher = AtStep(panel)
    panel.callbacks.append(watcher)
    panel.run(show=False)
    assert watcher.lengths[0] == 1 and set(watcher.lengths[1:]) == {1}  # the first draw, then none for an hour
    assert len(panel.figure.data[0].x) == 5  # ... but the end of training is drawn
    assert len(panel.history) >= 5


@pytest.mark.parametrize("how", ["button", "interrupt"])
def test_stop_ends_training_early_with_a_checkpoint_and_a_usable_model(tiny, how):
    tiny.update(max_steps=40, save_steps=1000)
    panel = TrainPanel(tiny, refresh=0)

    def press(state):
        if state.global_step == 2:
            panel.stop_button.click() if how == "button" else os.kill(os.getpid(), signal.SIGINT)

    panel.callbacks.append(AtStep(action=press))
    result = panel.run(show=False)
    step = result.trainer.state.global_step
    assert result.stopped and 2 <= step <= 3
    assert "stopped" in panel.status.value and f"step {step} of 40" in panel.status.value
    checkpoint = Path(tiny["output_dir"]) / f"checkpoint-{step}"
    assert (checkpoint / "trainer_state.json").is_file() and (checkpoint / "adapter_model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    answer = tk.generate(result.model, result.tokenizer, "Who are you?", max_new_tokens=4)
    assert isinstance(answer, str)
    resumed = tk.train(tiny, resume_from_checkpoint=True, max_steps=step + 2)
    assert resumed.trainer.state.global_step == step + 2


def test_a_bad_config_fails_when_the_panel_is_built(tiny):
    with pytest.raises(tk.ConfigError, match="learning_rat"):
        TrainPanel(tiny, learning_rat=1e-3)


def test_a_data_error_is_shown_in_the_panel_and_raised(tiny):
    panel = TrainPanel(tiny, dataset="no_such_set")
    with pytest.raises(tk.TunekitError, match="no_such_set"):
        panel.run(show=False)
    assert "no_such_set" in panel.status.value


def test_the_saved_notebook_copy_has_the_chart_as_an_image(tiny):
    panel = TrainPanel(tiny, refresh=0)
    panel.run(show=False)
    bundle = panel._repr_mimebundle_()
    assert WIDGET_VIEW in bundle  # JupyterLab renders the live widget ...
    assert "<img src='data:image/png;base64," in bundle["text/html"]  # ... a static viewer the picture


# -- DataPanel ----------------------------------------------------------------------------------


def _span_flags(html: str) -> list[list[bool]]:
    """Per token box in the panel: True where the span is coloured as carrying loss."""
    boxes = html.split("tokens, ")[1:]
    return [[cls == "tk-loss" for cls in re.findall(r"class='(tk-loss|tk-context)'", box)] for box in boxes]


def test_data_panel_colours_match_the_labels_of_the_training_rows(tiny):
    tiny.update(dataset="alpaca_en_demo", max_samples=20, cutoff_len=64, packing=False)  # row for row
    panel = DataPanel(tiny)
    tokenizer = tk.load_tokenizer(tiny)
    rows = tk.load_data(tiny, tokenizer)["train"]
    assert len(rows) == len(panel.rows) == 20
    for index in (0, 1, 7, 19):
        panel.go(index)
        expected = [label != -100 for label in rows[index]["labels"]]
        assert _span_flags(panel.tokens.value) == [expected]
        assert any(expected) and not all(expected)  # answers are green, prompts grey


def test_data_panel_train_on_prompt_colours_everything(tiny):
    panel = DataPanel(tiny, train_on_prompt=True)
    assert all(all(box) for box in _span_flags(panel.tokens.value))


def test_data_panel_navigation_and_search(tiny):
    panel = DataPanel(tiny)
    assert panel.index == 0 and "row 1 of 92" in panel.position.value
    panel.next_button.click()
    panel.next_button.click()
    assert panel.index == 2
    panel.prev_button.click()
    assert panel.index == 1
    panel.go(0)
    panel.prev_button.click()
    assert panel.index == 91  # wraps
    panel.random_button.click()
    assert 0 <= panel.index < 92
    panel.query.value = "tunekit team"
    panel.search_button.click()
    assert "tunekit team" in str(panel.rows[panel.index]).lower()
    assert "tunekit team" in panel.view.value
    assert not panel.search("zzz-not-there") and "no row contains" in panel.position.value


def test_data_panel_shows_chosen_and_rejected_side_by_side(tiny):
    panel = DataPanel(tiny, stage="dpo", dataset="dpo_en_demo")
    row = panel.rows[0]
    for side in ("chosen", "rejected"):
        assert row[side][0]["content"][:20].replace("'", "&#x27;") in panel.view.value
    assert len(_span_flags(panel.tokens.value)) == 2  # one token box per side


def test_data_panel_shows_the_kto_label(tiny):
    panel = DataPanel(tiny, stage="kto", dataset="kto_en_demo")
    label = panel.rows[0]["label"]
    assert f"label: {str(label).lower()}" in panel.view.value


def test_data_panel_histogram_marks_cutoff_len_and_counts_truncated_rows(tiny):
    panel = DataPanel(tiny, dataset="alpaca_en_demo", cutoff_len=48)
    longer = sum(length > 48 for length in panel.lengths)
    assert panel.truncated == longer > 0
    assert f"<b>{longer}</b> of {len(panel.lengths)} rows" in panel.summary.value
    assert list(panel.histogram.data[0].x) == panel.lengths
    assert panel.histogram.layout.shapes[0].x0 == 48  # the cutoff_len line


# -- ConfigPanel --------------------------------------------------------------------------------


def test_config_panel_round_trips_yaml(tmp_path):
    panel = ConfigPanel(ROOT / "examples" / "dpo_lora.yaml")
    assert panel.config == tk.load_config(ROOT / "examples" / "dpo_lora.yaml")
    panel.controls["learning_rate"].value = 3e-5
    panel.controls["pref_loss"].value = "ipo"
    panel.path.value = str(tmp_path / "mine.yaml")
    panel.save_button.click()
    saved = tk.load_config(tmp_path / "mine.yaml")
    assert saved == panel.config
    assert saved.learning_rate == 3e-5 and saved.pref_loss == "ipo" and saved.stage == "dpo"
    assert saved.lr_scheduler_type == "cosine"  # a key the form does not show is kept
    assert yaml.safe_load((tmp_path / "mine.yaml").read_text())["model_name_or_path"] == "smollm2-135m-instruct"
    assert "tunekit train" in panel.message.value


def test_config_panel_shows_grpo_keys_for_grpo_only(tmp_path):
    panel = ConfigPanel(ROOT / "examples" / "grpo_lora.yaml")
    shown = {key for key, control in panel.controls.items() if control.layout.display != "none"}
    assert {"num_generations", "reward_funcs", "pref_beta", "model_name_or_path", "output_dir"} <= shown
    assert "pref_loss" not in shown
    panel.controls["stage"].value = "sft"
    shown = {key for key, control in panel.controls.items() if control.layout.display != "none"}
    assert not {"num_generations", "reward_funcs", "pref_beta"} & shown
    assert {"model_name_or_path", "dataset", "output_dir"} <= shown
    assert panel.config.reward_funcs == "accuracy,format" and "reward_funcs" not in yaml.safe_load(panel.yaml())


def test_yaml_saved_by_the_config_panel_runs_in_the_cli(tiny, tmp_path):
    panel = ConfigPanel(tiny)
    panel.controls["max_steps"].value = 3
    path = panel.save(tmp_path / "from_panel.yaml")
    done = run_cli("train", path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert tk.read_log(tiny["output_dir"])[-1]["step"] == 3


def test_config_panel_shows_errors_inline_and_blocks_saving(tiny):
    panel = ConfigPanel(tiny)
    panel.controls["learning_rate"].value = -1.0
    assert "learning_rate" in panel.message.value and "✗" in panel.message.value
    assert panel.save_button.disabled
    with pytest.raises(tk.ConfigError):
        panel.config
    panel.controls["learning_rate"].value = 1e-4
    assert "✓" in panel.message.value and not panel.save_button.disabled


def test_config_panel_shows_preference_keys_only_where_they_matter(tiny):
    panel = ConfigPanel(tiny)
    assert panel.controls["pref_loss"].layout.display == "none"
    panel.controls["stage"].value = "dpo"
    assert panel.controls["pref_loss"].layout.display is None and panel.controls["pref_beta"].layout.display is None
    panel.controls["stage"].value = "ppo"  # ppo needs a reward_model: the error says so
    assert "reward_model" in panel.message.value


# -- ChatPanel and compare_runs -----------------------------------------------------------------


def test_chat_panel_compares_the_base_and_the_adapter_on_the_same_prompt(tiny):
    tiny.update(max_steps=2)
    result = tk.train(tiny)
    panel = ChatPanel(result.model, result.tokenizer, compare_adapter=True, max_new_tokens=8)
    answers = panel.ask("Who are you?")
    assert list(answers) == ["base (adapter off)", "with adapter"]
    with result.model.disable_adapter():
        base = tk.generate(result.model, result.tokenizer, "Who are you?", max_new_tokens=8, seed=42)
    assert answers["base (adapter off)"] == base
    panel.temperature.value = 1.0
    panel.ask_button.click()
    panel.ask_button.click()
    assert len(panel.exchanges) == 3
    assert panel.exchanges[1] == panel.exchanges[2]  # same prompt, settings and seed: same sample
    assert "with adapter" in panel.answers.value


def test_chat_panel_takes_two_models_side_by_side(tiny):
    model, tokenizer = tk.load_for_inference("tiny-random-llama")
    panel = ChatPanel({"before": (model, tokenizer), "after": (model, tokenizer)}, max_new_tokens=6)
    answers = panel.ask("Hello")
    assert answers["before"] == answers["after"]


def test_compare_runs_draws_one_line_per_run(tiny, tmp_path):
    runs = {}
    for name, rate in (("slow", 1e-4), ("fast", 3e-3)):
        runs[name] = tk.train(tiny, learning_rate=rate, output_dir=str(tmp_path / name)).output_dir
    chart = compare_runs(runs, "loss")
    assert [trace.name for trace in chart.figure.data] == ["slow", "fast"]
    assert all(len(trace.y) == 4 for trace in chart.figure.data)
    assert "base64" in chart._repr_mimebundle_()["text/html"]
