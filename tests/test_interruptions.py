"""Stop, Ctrl-C, kill -9 and a diverging loss: the output folder stays whole, the last checkpoint
resumes to the very losses of an uninterrupted run, and a re-run never trains on top of old results."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import tunekit as tk
from conftest import run_cli, write_dataset
from tunekit.outputs import checkpoint_step, last_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def step_losses(output_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in tk.read_log(output_dir) if isinstance(r.get("loss"), float)}


class AtStep(TrainerCallback):
    """Calls ``action()`` once, at the end of step ``step``."""

    def __init__(self, step, action):
        self.step, self.action, self.done = step, action, False

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step and not self.done:
            self.done = True
            self.action()


class Died(Exception):
    """Stands for a process that died mid-run (the checkpoints on disk are all that is left)."""


class DieInStep(TrainerCallback):
    """Dies as step ``step`` begins (the steps before it are done and logged)."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1:
            raise Died


@pytest.fixture
def prefs(tmp_path):
    rows = [(f"Is the {w} good?", f"Yes, the {w} is good.", f"No, the {w} is bad.")
            for w in ("apple", "river", "stone", "cloud", "tiger", "piano", "garden", "candle")]
    folder = tmp_path / "data"
    write_dataset(folder, "prefs", [{"instruction": p, "chosen": c, "rejected": r} for p, c, r in rows],
                  {"ranking": True})
    write_dataset(folder, "unpaired", [{"instruction": p, "output": a, "label": good}
                                       for p, c, r in rows for a, good in ((c, True), (r, False))],
                  {"columns": {"kto_tag": "label"}})
    return str(folder)


STAGES = {"pt": {"stage": "pt", "dataset": "c4_demo"}, "sft": {}, "rm": {"stage": "rm", "dataset": "prefs"},
          "dpo": {"stage": "dpo", "dataset": "prefs"}, "kto": {"stage": "kto", "dataset": "unpaired"}}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_run_that_dies_after_step_3_resumes_to_the_same_losses(stage, tiny, prefs):
    tiny.update(max_steps=6, save_steps=3, dataset_dir=prefs, **STAGES[stage])
    whole = tk.train({**tiny, "output_dir": tiny["output_dir"] + "-whole"})
    with pytest.raises(Died):
        tk.train(tiny, callbacks=[DieInStep(5)])  # dies after step 4 was logged; the checkpoint is at 3
    out = Path(tiny["output_dir"])
    assert tk.read_log(out)[-1]["step"] == 4 and not (out / "checkpoint-6").exists()
    resumed = tk.train(tiny, resume_from_checkpoint=True)
    assert resumed.trainer.state.global_step == 6
    expected, got = step_losses(whole.output_dir), step_losses(out)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]  # steps 1-3 kept from before, 4-6 from the resumed run
    for step in range(1, 7):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), (stage, step)


CHILD = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    import tunekit as tk

    class Kill(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 4:  # in step 5: steps 1-4 are logged, the checkpoint is at 3
                os.kill(os.getpid(), signal.SIGKILL)

    config = eval(sys.argv[1])
    tk.train(config, callbacks=[Kill()])
""")


def test_kill_9_then_resume_through_the_cli_gives_the_uninterrupted_losses(tiny, tmp_path):
    tiny.update(max_steps=6, save_steps=3)
    whole = tk.train({**tiny, "output_dir": tiny["output_dir"] + "-whole"})
    child = subprocess.run([sys.executable, "-c", CHILD, repr(tiny)], capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    out = Path(tiny["output_dir"])
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-3"]
    config = tmp_path / "run.yaml"
    tk.load_config(tiny).to_yaml(config)
    proc = run_cli("train", config, "resume_from_checkpoint=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from" in proc.stdout and "checkpoint-3" in proc.stdout
    expected, got = step_losses(whole.output_dir), step_losses(out)
    assert sorted(got) == list(range(1, 7))
    assert [got[s] for s in range(1, 7)] == pytest.approx([expected[s] for s in range(1, 7)], rel=1e-5)


HALF_WRITE = textwrap.dedent("""
    import os, signal, sys
    import safetensors.torch
    import tunekit as tk

    target = sys.argv[2]
    real_save_file = safetensors.torch.save_file

    def save_file(tensors, filename, *args, **kwargs):  # the machine dies half-way through writing weights
        if target in str(filename):
            with open(filename, "wb") as handle:
                handle.write(b"half a file")
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save_file(tensors, filename, *args, **kwargs)

    safetensors.torch.save_file = save_file
    tk.train(eval(sys.argv[1]))
""")


def _die_while_saving(config: dict, target: str) -> None:
    proc = subprocess.run([sys.executable, "-c", HALF_WRITE, repr(config), target], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_a_checkpoint_cut_short_by_a_kill_is_never_taken_for_a_whole_one(tiny):
    tiny.update(max_steps=4, save_steps=2)
    _die_while_saving(tiny, "checkpoint-4")
    out = Path(tiny["output_dir"])
    assert not (out / "checkpoint-4").exists() and (out / "checkpoint-4.tmp").is_dir()
    assert last_checkpoint(out) == str(out / "checkpoint-2")
    load_file(out / "checkpoint-2" / "adapter_model.safetensors")  # whole
    resumed = tk.train(tiny, resume_from_checkpoint=True)
    assert resumed.trainer.state.global_step == 4
    assert not (out / "checkpoint-4.tmp").exists() and (out / "checkpoint-4" / "trainer_state.json").is_file()


def test_a_final_save_cut_short_keeps_the_previous_files_whole(tiny):
    tiny.update(max_steps=2, save_steps=2)
    first = tk.train(tiny)
    out = Path(first.output_dir)
    before = load_file(out / "adapter_model.safetensors")
    _die_while_saving({**tiny, "max_steps": 4, "resume_from_checkpoint": True}, ".saving")
    after = load_file(out / "adapter_model.safetensors")  # still the first run's whole file
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert (out / "checkpoint-4").is_dir()  # the checkpoint before the final save was whole, and is kept


def test_a_diverging_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    tiny.update(max_steps=12, save_steps=1, learning_rate=1e20, warmup_steps=3,
                lr_scheduler_type="constant_with_warmup")  # lr 0, then 3e19: finite weights, then a NaN loss
    with pytest.raises(tk.TrainingError) as caught:
        tk.train(tiny)
    message = str(caught.value)
    out = Path(tiny["output_dir"])
    last = last_checkpoint(out)
    assert "nan" in message.lower() or "inf" in message
    step = checkpoint_step(last) + 1
    assert f"step {step}" in message and last in message and "learning_rate=1e+20" in message
    weights = load_file(Path(last) / "adapter_model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (out / "adapter_model.safetensors").exists()  # nothing final was written from a broken model
    assert all(isinstance(r["loss"], float) for r in tk.read_log(out) if "loss" in r)  # no "nan" logged

    config = tmp_path / "nan.yaml"
    tk.load_config({**tiny, "output_dir": str(tmp_path / "cli")}).to_yaml(config)
    proc = run_cli("train", config)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("tunekit: error: the loss became")


def test_a_learning_rate_that_overflows_the_optimizer_is_a_training_error(tiny):
    with pytest.raises(tk.TrainingError, match=r"overflowed at step 1 .*learning_rate=1e\+38.*lower learning_rate"):
        tk.train({**tiny, "learning_rate": 1e38})


def test_ctrl_c_stops_cleanly_at_the_step_end_and_a_second_aborts(tiny):
    tiny.update(max_steps=6, save_steps=100)
    result = tk.train(tiny, callbacks=[AtStep(2, lambda: os.kill(os.getpid(), signal.SIGINT))])
    out = Path(tiny["output_dir"])
    assert result.stopped and result.trainer.state.global_step == 2
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    resumed = tk.train(tiny, resume_from_checkpoint=True)
    assert resumed.trainer.state.global_step == 6 and sorted(step_losses(out)) == list(range(1, 7))

    def twice():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        tk.train({**tiny, "output_dir": str(out) + "-2"}, callbacks=[AtStep(2, twice)])
    assert not list(Path(str(out) + "-2").glob("checkpoint-*"))  # aborted at once: nothing half-done is saved


def test_ctrl_c_on_the_cli_saves_a_checkpoint_and_exits_130(tiny, tmp_path):
    config = tmp_path / "long.yaml"
    tk.load_config({**tiny, "max_steps": 100000, "save_steps": 100000}).to_yaml(config)
    proc = subprocess.Popen([sys.executable, "-m", "tunekit", "train", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = Path(tiny["output_dir"]) / "trainer_log.jsonl"
    deadline = time.time() + 300
    while len(tk.read_log(log)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    step = json.loads((Path(tiny["output_dir"]) / "trainer_state.json").read_text())["global_step"]
    assert f"stopped at step {step} of 100000" in stdout
    assert (Path(tiny["output_dir"]) / f"checkpoint-{step}" / "trainer_state.json").is_file()
    assert "Traceback" not in stderr


def test_a_rerun_starts_from_the_base_model_and_says_what_it_removed(tiny, capsys):
    tiny.update(max_steps=4, save_steps=100, overwrite_output_dir=True)
    first = tk.train(tiny)
    stopper = tk.StopCallback()
    half = tk.train(tiny, callbacks=[AtStep(2, stopper.stop), stopper])
    assert half.stopped
    capsys.readouterr()
    again = tk.train(tiny)  # the same cell run again, after a stopped run
    said = capsys.readouterr().out
    assert "overwrite_output_dir: removing the previous run" in said and "checkpoint-2" in said
    assert step_losses(again.output_dir) == pytest.approx(step_losses(first.output_dir), rel=1e-6)
    assert sorted(p.name for p in Path(again.output_dir).glob("checkpoint-*")) == ["checkpoint-4"]


def test_a_rerun_without_overwrite_says_what_it_found_and_trains_nothing(tiny):
    tk.train({**tiny, "max_steps": 2, "save_steps": 2})
    log_before = tk.read_log(tiny["output_dir"])
    with pytest.raises(tk.ConfigError, match=r"already holds results.*overwrite_output_dir: true.*checkpoint-2"):
        tk.train({**tiny, "max_steps": 2})
    assert tk.read_log(tiny["output_dir"]) == log_before


def test_an_adapter_from_a_stopped_run_is_named_as_half_trained(tiny):
    stopper = tk.StopCallback()
    half = tk.train({**tiny, "max_steps": 8}, callbacks=[AtStep(2, stopper.stop), stopper])
    with pytest.warns(UserWarning, match=r"stopped at step 2 of 8"):
        tk.train({**tiny, "max_steps": 1, "adapter_name_or_path": half.output_dir,
                  "output_dir": tiny["output_dir"] + "-next"})


def _check_whole(out: Path) -> None:
    """Every file under a real name in ``out`` reads back whole."""
    for checkpoint in out.glob("checkpoint-*"):
        if checkpoint.name.endswith(".tmp"):
            continue
        json.loads((checkpoint / "trainer_state.json").read_text())
        load_file(checkpoint / "adapter_model.safetensors")
        torch.load(checkpoint / "optimizer.pt", weights_only=False)
    for name in ("adapter_model.safetensors",):
        if (out / name).exists():
            load_file(out / name)
    tk.read_log(out)


def test_kill_9_at_random_moments_leaves_only_whole_files_and_a_run_that_finishes(tiny, tmp_path):
    import random

    tiny.update(max_steps=30, save_steps=1, logging_steps=1)  # a save every step: kills often land in one
    config = tmp_path / "run.yaml"
    tk.load_config(tiny).to_yaml(config)
    out = Path(tiny["output_dir"])
    rng = random.Random(0)
    for attempt in range(3):
        resume = ["resume_from_checkpoint=true"] if last_checkpoint(out) else ["overwrite_output_dir=true"]
        proc = subprocess.Popen([sys.executable, "-m", "tunekit", "train", str(config), *resume],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = len(tk.read_log(out))
        while len(tk.read_log(out)) < start + 2 and proc.poll() is None:  # let it train a little
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        proc.kill()
        proc.wait()
        _check_whole(out)
    final = run_cli("train", config, "resume_from_checkpoint=true")
    assert final.returncode == 0, final.stderr[-2000:]
    _check_whole(out)
    assert sorted(step_losses(out)) == list(range(1, 31)) and not list(out.glob("*.tmp"))


def test_save_total_limit_keeps_the_newest_whole_checkpoints(tiny):
    result = tk.train({**tiny, "max_steps": 4, "save_steps": 1, "save_total_limit": 2})
    out = Path(result.output_dir)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]


def test_only_the_process_that_writes_the_final_model_clears_its_staging_folder(tmp_path):
    """Under torchrun every process calls save_outputs; one that came later removed the folder the first one was
    writing into (seen as a failed save in the suite). The others leave it, and wait for it to be cleared."""
    from types import SimpleNamespace

    from tunekit.safety import STAGING, save_outputs

    staging = tmp_path / f".saving{STAGING}"
    staging.mkdir()
    (staging / "adapter_model.safetensors").write_text("being written by process 0")
    waited = []
    other = SimpleNamespace(model=torch.nn.Linear(2, 2), state=SimpleNamespace(global_step=3),
                            is_world_process_zero=lambda: False, save_model=lambda path: None,
                            accelerator=SimpleNamespace(wait_for_everyone=lambda: waited.append(True)))
    save_outputs(other, tokenizer=None, output_dir=str(tmp_path), metrics={})
    assert (staging / "adapter_model.safetensors").read_text() == "being written by process 0"
    assert waited == [True]
