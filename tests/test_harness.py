"""The benchmark harness: lm-eval runs tunekit's own offline task on the tiny model (with and without an
adapter) and on a rigged model that knows the answers; missing lm-eval and unknown tasks are one-line errors."""

import copy
import json
import subprocess
import sys

import pytest
from lm_eval.api.model import LM

from tunekit.errors import ConfigError
from tunekit.harness import TASKS_DIR, run_tasks
from tunekit.models import load_for_inference

ROWS = [json.loads(line) for line in (TASKS_DIR / "tunekit_mc.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny():
    return load_for_inference("tiny-random-llama")


def test_the_bundled_task_runs_on_the_tiny_model(tiny):
    model, tokenizer = tiny
    scores = run_tasks(model, tokenizer, ["tunekit_mc"], limit=8, batch_size=4)
    assert {"tunekit_mc/acc", "tunekit_mc/acc_norm"} <= set(scores)
    assert all(0.0 <= scores[f"tunekit_mc/{m}"] <= 1.0 for m in ("acc", "acc_norm"))
    assert all("/" in key and isinstance(value, float) for key, value in scores.items())


def test_a_peft_model_runs_with_its_adapter_and_keeps_training_mode(tiny):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.train()
    scores = run_tasks(peft_model, tokenizer, "tunekit_mc", limit=4)
    assert 0.0 <= scores["tunekit_mc/acc"] <= 1.0
    assert peft_model.training


class KnowsTheAnswers(LM):
    """Rigged: the right choice scores 0, every other one -10 (so acc and acc_norm must be 1)."""

    def loglikelihood(self, requests, disable_tqdm=False):
        answers = {row["question"]: row["choices"][row["answer"]] for row in ROWS}
        out = []
        for req in requests:
            context, continuation = req.args
            question = context.split("Question: ", 1)[1].split("\nAnswer:", 1)[0]
            out.append((0.0 if continuation.strip() == answers[question] else -10.0, False))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm=False):
        raise NotImplementedError


def test_a_model_that_knows_the_answers_scores_one():
    scores = run_tasks(KnowsTheAnswers(), None, "tunekit_mc")  # all 32 rows
    assert scores["tunekit_mc/acc"] == 1.0 and scores["tunekit_mc/acc_norm"] == 1.0


def test_the_task_data_are_sound():
    assert 20 <= len(ROWS) <= 40
    for row in ROWS:
        assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4 and row["answer"] in range(4)


def test_the_bundled_task_loads_from_any_directory(tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(tmp_path)
    loaded = TaskManager(include_path=str(TASKS_DIR), include_defaults=False).load(["tunekit_mc"])
    assert [doc["question"] for doc in loaded["tasks"]["tunekit_mc"].eval_docs] == [row["question"] for row in ROWS]


def test_an_unknown_task_is_a_one_line_error(tiny):
    model, tokenizer = tiny
    with pytest.raises(ConfigError) as err:
        run_tasks(model, tokenizer, ["tunekit_mc", "arc_easyy"])
    message = str(err.value)
    assert "\n" not in message and "'arc_easyy'" in message and "arc_easy" in message.replace("'arc_easyy'", "")


def test_missing_lm_eval_names_the_extra(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(ConfigError) as err:
        run_tasks(*tiny, "tunekit_mc")
    assert "\n" not in str(err.value) and 'pip install "tunekit[harness]"' in str(err.value)


def test_importing_tunekit_does_not_import_lm_eval():
    code = "import sys, tunekit, tunekit.harness; print('lm_eval' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
