"""backend: auto | hf | unsloth. The machine's probes (CUDA, the unsloth package) are injected; the real
unsloth is never installed or imported here: where an import is needed, a stub package stands in,
which records what was imported before it."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import tunekit as tk
from tunekit import backends
from tunekit.config import ConfigError

PATCHED = ("transformers", "trl", "peft")

# (cuda, unsloth installed, requested) -> the backend, or the words of the ConfigError
MATRIX = [
    (True, True, "auto", "unsloth"),
    (True, False, "auto", "hf"),
    (False, True, "auto", "hf"),
    (False, False, "auto", "hf"),
    (True, True, "hf", "hf"),
    (True, False, "hf", "hf"),
    (False, True, "hf", "hf"),
    (False, False, "hf", "hf"),
    (True, True, "unsloth", "unsloth"),
    (True, False, "unsloth", ["unsloth package", "not installed", 'pip install "tunekit[unsloth]"']),
    (False, True, "unsloth", ["CUDA GPU", "none is visible", "backend: auto"]),
    (False, False, "unsloth", ["CUDA GPU", "unsloth package", 'pip install "tunekit[unsloth]"', "backend: auto"]),
]


@pytest.mark.parametrize("cuda,installed,requested,expected", MATRIX)
def test_backend_choice_in_every_combination(cuda, installed, requested, expected):
    cfg = tk.load_config({"dataset": "identity", "backend": requested})
    if isinstance(expected, str):
        assert backends.choose_backend(requested, cuda=cuda, installed=installed) == expected
        assert backends.choose_backend(cfg, cuda=cuda, installed=installed) == expected
        return
    with pytest.raises(ConfigError) as err:
        backends.choose_backend(cfg, cuda=cuda, installed=installed)
    message = str(err.value)
    assert "\n" not in message and message.startswith("backend=unsloth needs")
    for words in expected:
        assert words in message
    if cuda:  # the package alone is missing: the message does not blame the GPU
        assert "CUDA" not in message
    if installed:
        assert "not installed" not in message


def test_the_probes_are_read_when_choosing(monkeypatch):
    """Without injected values, the probes are torch.cuda.is_available() and finding the unsloth package."""
    import importlib.machinery
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        importlib.machinery.ModuleSpec("unsloth", None) if name == "unsloth" else find_spec(name, *a)))
    assert backends.choose_backend("auto") == "unsloth"
    assert backends.choose_backend(tk.load_config({"dataset": "identity", "backend": "hf"})) == "hf"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backends.choose_backend("auto") == "hf"


def test_this_machine_picks_the_plain_path_and_says_why(tiny, capsys):
    assert backends.choose_backend("auto") == ("unsloth" if torch.cuda.is_available() and backends.unsloth_installed()
                                               else "hf")
    if torch.cuda.is_available():
        pytest.skip("the CPU-only message is checked on CPU machines")
    tk.train(tiny, max_steps=1)
    assert "[tunekit] backend: hf (transformers + peft + trl; no CUDA GPU)" in capsys.readouterr().out


def test_qlora_needs_cuda():
    cfg = tk.load_config({"dataset": "identity", "quantization_bit": 4})
    with pytest.raises(ConfigError, match=r"quantization_bit=4 \(QLoRA\) needs a CUDA GPU.*remove it"):
        backends.choose_backend(cfg, cuda=False, installed=False)
    for installed in (True, False):  # on CUDA, QLoRA goes through Unsloth or bitsandbytes
        assert backends.choose_backend(cfg, cuda=True, installed=installed) in ("unsloth", "hf")


def test_qlora_is_a_lora_method():
    with pytest.raises(ConfigError, match="quantization_bit=4 trains a LoRA adapter.*finetuning_type: lora"):
        tk.load_config({"dataset": "identity", "quantization_bit": 4, "finetuning_type": "full"})


def test_qlora_on_the_plain_path_names_bitsandbytes(monkeypatch):
    from tunekit.models import load

    monkeypatch.setattr(load.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="needs the bitsandbytes package: pip install bitsandbytes"):
        load._bitsandbytes_config(tk.load_config({"dataset": "identity", "quantization_bit": 4}))


def test_trl_1_15_cannot_run_its_fused_lm_head_stages_on_cpu(monkeypatch):
    """trl 1.15's SFT, DPO and KTO trainers compute log-probs with a triton-only kernel; pt (transformers'
    Trainer), rm, ORPO and SimPO do not use it."""
    monkeypatch.setattr(backends, "_trl_version", lambda: (1, 15))
    for stage in ("sft", "dpo", "kto", "grpo"):
        cfg = tk.load_config({"dataset": "dpo_en_demo", "stage": stage, "per_device_train_batch_size": 2,
                              "num_generations": 2, "max_new_tokens": 64})
        with pytest.raises(ConfigError, match=f"stage={stage} on a CPU needs trl 1.16 or newer"):
            backends.choose_backend(cfg, tk.STAGES[stage], cuda=False, installed=False)
        assert backends.choose_backend(cfg, tk.STAGES[stage], cuda=True, installed=True) == "unsloth"  # the extra's
    for keys in ({"stage": "pt"}, {"stage": "rm"}, {"stage": "dpo", "pref_loss": "orpo"},
                 {"stage": "dpo", "pref_loss": "simpo"}):
        cfg = tk.load_config({"dataset": "dpo_en_demo", **keys})
        assert backends.choose_backend(cfg, tk.STAGES[cfg.stage], cuda=False, installed=False) == "hf"
    with pytest.raises(ConfigError, match="needs trl 1.16"):  # the run's plan asks with the config's stage
        tk.plan({"dataset": "identity", "output_dir": "unused"}, cuda=False)
    monkeypatch.setattr(backends, "_trl_version", lambda: (1, 16))
    cfg = tk.load_config({"dataset": "identity"})
    assert backends.choose_backend(cfg, tk.STAGES["sft"], cuda=False, installed=False) == "hf"


def test_llamafactory_use_unsloth_chooses_the_backend():
    assert tk.load_config({"dataset": "identity", "use_unsloth": True}).backend == "unsloth"
    assert tk.load_config({"dataset": "identity", "use_unsloth": False}).backend == "hf"
    assert tk.load_config({"dataset": "identity", "use_unsloth": True, "backend": "hf"}).backend == "hf"
    assert tk.load_config({"dataset": "identity"}).backend == "auto"


def test_rm_ppo_and_full_runs_say_they_load_plainly():
    def reason(**keys):
        cfg = tk.load_config({"dataset": "identity", "reward_model": "x", **keys})
        return backends.plain_reason(cfg, tk.STAGES[cfg.stage])

    assert "no reward-model support" in reason(stage="rm")
    assert "PPO loop" in reason(stage="ppo")
    assert "finetuning_type=full" in reason(finetuning_type="full")
    assert "finetuning_type=freeze" in reason(finetuning_type="freeze")
    for stage in ("pt", "sft", "dpo", "kto"):
        assert reason(stage=stage, per_device_train_batch_size=2) is None
    rm = tk.load_config({"dataset": "dpo_en_demo", "stage": "rm", "backend": "unsloth"})
    assert backends.describe(rm, "unsloth", tk.STAGES["rm"]) == ("backend: unsloth, but this run loads its model with plain "
                                                "transformers + peft (Unsloth has no reward-model support)")
    assert "patched trl trainers" in backends.describe(tk.load_config({"dataset": "identity"}), "unsloth")


def test_unsloth_keywords_follow_the_config():
    from tunekit.models import unsloth_load_kwargs, unsloth_peft_kwargs

    cfg = tk.load_config({"dataset": "identity", "cutoff_len": 1024, "quantization_bit": 4, "bf16": True,
                          "lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.05, "seed": 7})
    load = unsloth_load_kwargs(cfg, "/models/llama")
    assert load["model_name"] == "/models/llama" and load["max_seq_length"] == 1024
    assert load["load_in_4bit"] is True and load["load_in_8bit"] is False
    assert load["dtype"] == torch.bfloat16 and load["use_gradient_checkpointing"] == "unsloth"
    assert load["fix_tokenizer"] is False and load["random_state"] == 7
    peft = unsloth_peft_kwargs(cfg, ["q_proj", "v_proj"])
    assert (peft["r"], peft["lora_alpha"], peft["lora_dropout"]) == (16, 32, 0.05)
    assert peft["target_modules"] == ["q_proj", "v_proj"] and peft["use_gradient_checkpointing"] == "unsloth"
    plain = tk.load_config({"dataset": "identity", "fp16": True, "gradient_checkpointing": False})
    assert unsloth_load_kwargs(plain, "m")["dtype"] == torch.float16
    assert unsloth_load_kwargs(plain, "m")["load_in_4bit"] is False
    assert unsloth_peft_kwargs(plain, [])["use_gradient_checkpointing"] is False
    assert unsloth_load_kwargs(tk.load_config({"dataset": "identity"}), "m")["dtype"] is None  # Unsloth's choice


def test_generation_switches_an_unsloth_model_to_inference_and_back(monkeypatch):
    """generate() calls FastLanguageModel.for_inference / for_training on a model Unsloth loaded (a stub
    module records the calls), and plain eval()/train() on any other."""
    calls = []
    stub = type(sys)("unsloth")
    stub.FastLanguageModel = type("FastLanguageModel", (), {
        "for_inference": staticmethod(lambda model: (calls.append("for_inference"), model.eval())),
        "for_training": staticmethod(lambda model: (calls.append("for_training"), model.train())),
    })
    monkeypatch.setitem(sys.modules, "unsloth", stub)
    model, tokenizer = tk.load_for_inference("tiny-random-llama")
    model.train()
    tk.generate(model, tokenizer, "hi", max_new_tokens=2)
    assert calls == [] and model.training
    model.tunekit_backend = "unsloth"
    tk.generate(model, tokenizer, "hi", max_new_tokens=2)
    assert calls == ["for_inference", "for_training"] and model.training
    model.eval()
    tk.generate(model, tokenizer, "hi", max_new_tokens=2)
    assert calls == ["for_inference", "for_training", "for_inference"]


# --- import order: Unsloth must be imported before transformers, trl and peft ----------------------------


@pytest.fixture
def stub_unsloth(tmp_path):
    """A folder with a stub ``unsloth`` package that writes down which of transformers/trl/peft were
    imported before it; returns a function that runs a script with it on the path."""
    package = tmp_path / "stub" / "unsloth"
    package.mkdir(parents=True)
    record = tmp_path / "record.json"
    package.joinpath("__init__.py").write_text(textwrap.dedent(f"""
        import json, sys
        with open({str(record)!r}, "w") as handle:
            json.dump([name for name in {PATCHED!r} if name in sys.modules], handle)
    """))

    def run(script: str) -> tuple[subprocess.CompletedProcess, list | None]:
        env_path = str(tmp_path / "stub")
        prelude = f"import sys; sys.path.insert(0, {env_path!r})\n"
        done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done, (json.loads(record.read_text()) if record.exists() else None)

    return run


def test_importing_tunekit_and_its_panels_imports_none_of_what_unsloth_patches(stub_unsloth):
    done, record = stub_unsloth(f"""
        import sys
        import tunekit, tunekit.backends, tunekit.models, tunekit.stages, tunekit.widgets
        print(sorted(name for name in {PATCHED!r} if name in sys.modules))
    """)
    assert done.stdout.strip() == "[]"
    assert record is None  # and unsloth itself was not imported either


def test_a_notebook_loading_its_config_imports_unsloth_first(stub_unsloth):
    """The notebooks' order: import tunekit and the panels, then the config (whose optim check imports
    transformers): Unsloth comes first, with no warning."""
    done, record = stub_unsloth("""
        import tunekit as tk
        from tunekit import backends
        from tunekit.widgets import ConfigPanel, DataPanel, TrainPanel
        backends.cuda_available = lambda: True  # the probe: this CPU machine plays a CUDA one
        cfg = tk.load_config({"dataset": "identity", "optim": "adafactor"})
        assert cfg.backend == "auto" and backends.activate(cfg) == "unsloth"
        import transformers  # the optim check did, after unsloth
    """)
    assert record == []
    assert "imported before unsloth" not in done.stderr


def test_the_cli_imports_unsloth_before_it_checks_the_config(stub_unsloth, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("stage: sft\ndataset: identity\nuse_unsloth: true\nsave_only_model: true\nmax_steps: 0\n")
    done, record = stub_unsloth(f"""
        from tunekit import backends
        from tunekit.cli import main
        backends.cuda_available = lambda: True
        assert main(["train", {str(config)!r}]) == 2  # max_steps: 0 is refused, after save_only_model's check
    """)
    assert record == []  # save_only_model is checked against transformers' TrainingArguments, after unsloth
    assert "max_steps=0 must be at least 1" in done.stderr and "imported before unsloth" not in done.stderr


def test_transformers_imported_first_gets_a_warning_that_says_what_to_do(stub_unsloth):
    done, record = stub_unsloth("""
        import transformers, peft
        import tunekit as tk
        from tunekit import backends
        cfg = tk.load_config({"dataset": "identity", "backend": "unsloth"})
        assert backends.activate(cfg, cuda=True, installed=True) == "unsloth"
    """)
    assert record == ["transformers", "peft"]
    warning = next(line for line in done.stderr.splitlines() if "imported before unsloth" in line)
    assert "transformers, peft were imported before unsloth" in warning
    assert "restart the kernel" in warning and "choose the backend first" in warning


def test_the_plain_backend_never_imports_unsloth(stub_unsloth, tmp_path):
    done, record = stub_unsloth(f"""
        import tunekit as tk
        from tunekit import backends
        backends.cuda_available = lambda: True
        cfg = tk.load_config({{"dataset": "identity", "backend": "hf"}})
        assert backends.activate(cfg) == "hf"
        tk.load_tokenizer(cfg)
    """)
    assert record is None
