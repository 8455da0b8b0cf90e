"""bench/plan_accuracy.py's fit of the CPU time model (``--fit``): given rows measured as the model with other
factors would predict them, it finds factors that predict every row again."""

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import plan_accuracy  # noqa: E402

RATES = {"matmul": 9e10, "bandwidth": 2.5e10}
CONFIGS = [("tiny", stage, batch, checkpointing) for stage in ("sft", "dpo", "kto", "grpo", "ppo", "distill")
           for batch in (2, 4) for checkpointing in ((False,) if stage == "ppo" else (False, True))]


def test_the_fit_finds_factors_that_predict_the_rows_it_was_given():
    truth = {"matmul_rate_cpu": RATES["matmul"], "efficiency_cpu": 0.3, "step_overhead_cpu": 0.012,
             "forward_overhead_cpu": 0.02, "checkpoint_layer_overhead_cpu": 0.001, "token_overhead_cpu": 0.004,
             "token_layer_overhead_cpu": 0.0005, "sampling_bandwidth_cpu": 0.2}
    plans = [plan_accuracy.planned(config) for config in CONFIGS]
    rows = [{"model": m, "stage": s, "batch": b, "checkpointing": c, "matmul_rate": RATES["matmul"],
             "bandwidth": RATES["bandwidth"], "measured_seconds_per_step": plan_accuracy.predicted_seconds(
                 plan, RATES, truth)} for (m, s, b, c), plan in zip(CONFIGS, plans)]
    off = [plan_accuracy.predicted_seconds(plan, RATES, {}) != pytest.approx(row["measured_seconds_per_step"],
                                                                           rel=0.05) for plan, row in zip(plans, rows)]
    assert sum(off) > len(rows) / 2  # the committed factors predict most of these rows more than 5% off
    fitted = plan_accuracy.fit(rows)
    assert fitted.pop("rows") == len(rows) and fitted.pop("outside") == []
    assert fitted["matmul_rate_cpu"] == RATES["matmul"] and all(v >= 0 for v in fitted.values())
    assert fitted["step_overhead_cpu"] == pytest.approx(truth["step_overhead_cpu"], rel=1e-3)
    assert fitted["forward_overhead_cpu"] == pytest.approx(truth["forward_overhead_cpu"], rel=1e-3)
    for plan, row in zip(plans, rows):
        assert plan_accuracy.predicted_seconds(plan, RATES, fitted) == pytest.approx(
            row["measured_seconds_per_step"], rel=1e-3)
    assert plan_accuracy.in_band(fitted, rows) == len(rows)
    slow = [row | {"measured_seconds_per_step": row["measured_seconds_per_step"] * (3 if i % 2 else 1)}
            for i, row in enumerate(rows)]  # every other row measured three times slower: predicted at a third
    assert plan_accuracy.in_band(fitted, slow) == (len(rows) + 1) // 2
