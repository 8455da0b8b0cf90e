"""EvalPanel from a hand-built EvalResult: the table, the chart, browsing the answers, the saved copy."""

import pytest

from tunekit.evaluation import EvalResult
from tunekit.widgets import EvalPanel

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _sample(i: int, verdict: str, **extra) -> dict:
    return {"prompt": f"question {i}", "base": f"base answer {i}", "tuned": f"tuned answer {i}",
            "scores": {"base": {"accuracy": 0.0}, "tuned": {"accuracy": 1.0}}, "verdict": verdict, **extra}


@pytest.fixture
def result():
    samples = [_sample(0, "win", reference="the reference 0"), _sample(1, "loss"), _sample(2, "win"),
               _sample(3, "tie", tuned="<script>alert('x')</script> & more")]
    return EvalResult(stage="sft", base="tiny-random-llama", tuned="saves/sft", rows=4,
                      measures={"perplexity": {"base": 14.25, "tuned": 6.3}, "accuracy": {"base": 0.1, "tuned": 0.4}},
                      lower_is_better=["perplexity"],
                      win_rate={"judge": "check:accuracy", "wins": 2, "ties": 1, "losses": 1, "win_rate": 0.625,
                                "stderr": 0.1, "without_ties": 2 / 3},
                      intervals={"accuracy": {"change": 0.3, "low": 0.12, "high": 0.48}},
                      samples=samples)


def test_table_has_the_numbers_the_change_and_the_win_rate(result):
    table = EvalPanel(result).table.value
    for text in ("14.25", "6.3", "-7.95", "0.1", "0.4", "+0.3", "lower is better", "0.625", "2 wins", "1 ties",
                 "1 losses", "check:accuracy", "tiny-random-llama", "4 held-out rows", "ties apart <b>0.667",
                 "95% interval", "[+0.12, +0.48]"):
        assert text in table
    assert table.count("#2e7d32") == 2  # both measures got better (perplexity by going down)


def test_chart_has_base_and_tuned_bars_per_measure_and_a_win_rate_bar(result):
    figure = EvalPanel(result).figure
    bars = [(t.name, t.y[0]) for t in figure.data]
    assert bars == [("base", 14.25), ("tuned", 6.3), ("base", 0.1), ("tuned", 0.4), ("win rate", 0.625)]
    assert [t.showlegend for t in figure.data[:4]] == [True, True, False, False]  # one legend entry per side
    assert [a.text for a in figure.layout.annotations] == ["perplexity ↓", "accuracy", "win rate"]
    assert figure.layout.shapes[0].y0 == 0.5  # the tie line


def test_browsing_moves_between_samples_and_the_filter_keeps_one_verdict(result):
    panel = EvalPanel(result)
    assert "question 0" in panel.sample.value and "the reference 0" in panel.sample.value
    assert "sample 1 of 4" in panel.position.value
    panel.next_button.click()
    assert panel.index == 1 and "question 1" in panel.sample.value and "loss" in panel.sample.value
    assert "base answer 1" in panel.sample.value and "tuned answer 1" in panel.sample.value
    assert "accuracy 1" in panel.sample.value  # the scores
    panel.prev_button.click()
    panel.prev_button.click()
    assert "question 3" in panel.sample.value  # wraps
    panel.verdict.value = "win"
    assert panel.shown == [0, 2] and "question 0" in panel.sample.value and "sample 1 of 2" in panel.position.value
    panel.next_button.click()
    assert "question 2" in panel.sample.value
    panel.next_button.click()
    assert "question 0" in panel.sample.value
    panel.filter("loss")
    assert panel.verdict.value == "loss" and panel.shown == [1]
    result.samples.pop(1)
    panel.filter("all")
    panel.filter("loss")
    assert "no sample with verdict loss" in panel.position.value and panel.sample.value == ""


def test_answers_are_escaped_and_the_static_copy_has_the_table_bars_and_samples(result):
    panel = EvalPanel(result)
    panel.go(3)
    assert "<script>" not in panel.sample.value and "&lt;script&gt;" in panel.sample.value
    bundle = panel._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    html = bundle["text/html"]
    assert panel.table.value in html and "14.25" in html
    assert "question 0" in html and "question 2" in html and "question 3" not in html
    assert "1 more in" in html


def test_static_copy_escapes_html_in_answers(result):
    result.samples.insert(0, result.samples.pop())  # the one with the <script> among the first few
    html = EvalPanel(result).static_bundle()["text/html"]
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html


def test_loads_from_a_saved_folder(result, tmp_path):
    result.save(tmp_path / "eval")
    panel = EvalPanel(str(tmp_path / "eval"))
    assert panel.result.samples == result.samples and panel.result.measures == result.measures
    assert "14.25" in panel.table.value and len(panel.shown) == 4


def test_without_win_rate_or_samples(result):
    result.win_rate, result.samples = None, []
    panel = EvalPanel(result)
    assert "win rate" not in panel.table.value and [t.name for t in panel.figure.data] == ["base", "tuned"] * 2
    assert "no samples" in panel.position.value
    assert "text/html" in panel.static_bundle()
