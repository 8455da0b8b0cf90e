"""LoRA variants and LLaMA-Factory's extras: each changes what it should (the optimizer's groups, the
adapter's starting weights, the loss, what trains), through the library that implements it."""

import json
from pathlib import Path

import pytest
import torch

import tunekit as tk


def built(tiny, **keys):
    """The run's trainer for ``tiny`` + ``keys``, built by the recipe and not trained."""
    p = tk.plan({**tiny, **keys})
    return tk.build(p, progress=False).trainer


def test_loraplus_gives_the_b_matrices_ratio_times_the_learning_rate(tiny):
    trainer = built(tiny, loraplus_lr_ratio=16.0, learning_rate=1e-3)
    optimizer = trainer.create_optimizer()
    lora_a = [p for n, p in trainer.model.named_parameters() if "lora_A" in n]
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert {lr_of[id(p)] for p in lora_a} == {1e-3}
    assert all(lr_of[id(p)] == pytest.approx(16e-3) for p in lora_b)
    plain = built(tiny, output_dir=tiny["output_dir"] + "-plain", learning_rate=1e-3).create_optimizer()
    assert {g["lr"] for g in plain.param_groups} == {1e-3}


def test_dora_adds_magnitude_vectors_and_rslora_scales_by_the_root_of_the_rank(tiny):
    dora = built(tiny, use_dora=True).model
    assert any("lora_magnitude_vector" in n for n, _ in dora.named_parameters())
    rank, alpha = 8, 16
    for keys, scale in (({}, alpha / rank), ({"use_rslora": True}, alpha / rank ** 0.5)):
        model = built(tiny, output_dir=tiny["output_dir"] + str(len(keys)), lora_rank=rank, lora_alpha=alpha,
                      **keys).model
        layer = next(m for m in model.modules() if isinstance(getattr(m, "scaling", None), dict) and "default" in m.scaling)
        assert layer.scaling["default"] == pytest.approx(scale)


def test_pissa_starts_from_the_principal_singular_vectors_and_converts_to_plain_lora(tiny):
    from tunekit.models import load_model

    plain, _ = load_model(tk.load_config(tiny))
    assert all(float(p.abs().max()) == 0 for n, p in plain.named_parameters() if "lora_B" in n)  # LoRA: B = 0
    pissa, _ = load_model(tk.load_config({**tiny, "pissa_init": True, "pissa_iter": -1}))
    assert all(float(p.abs().max()) > 0 for n, p in pissa.named_parameters() if "lora_B" in n)
    # the base keeps the residual: base + B A is the original weight
    layer = next(m for m in pissa.modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    original = next(m for m in plain.modules() if hasattr(m, "lora_A") and "default" in m.lora_A).base_layer.weight
    rebuilt = layer.base_layer.weight + layer.scaling["default"] * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    assert torch.allclose(rebuilt, original, atol=1e-5)

    result = tk.train({**tiny, "pissa_init": True, "pissa_iter": 2, "pissa_convert": True, "max_steps": 2})
    converted = Path(result.output_dir) / "pissa_converted"
    assert json.loads((converted / "adapter_config.json").read_text())["r"] == 2 * 8  # PiSSA -> LoRA doubles r


def test_llama_pro_trains_the_expanded_blocks_only(tiny):
    model = built(tiny, finetuning_type="freeze", use_llama_pro=True, freeze_trainable_layers=1).model
    trained = {n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters()
               if p.requires_grad and ".layers." in n}
    assert trained == {"1"}  # 2 layers, 1 expanded block: the second of each pair
    with pytest.raises(tk.ConfigError, match="must divide the model's 2 layers"):
        built(tiny, output_dir=tiny["output_dir"] + "-3", finetuning_type="freeze", use_llama_pro=True,
              freeze_trainable_layers=-1)


def test_dft_loss_weights_each_token_by_its_probability(tiny):
    trainer = built(tiny, use_dft_loss=True)
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    with torch.no_grad():
        dft = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        mask = labels != -100
        logp = torch.log_softmax(logits.float(), -1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
        expected = (-(logp * logp.exp()) * mask).sum() / mask.sum()
        cross_entropy = (-logp * mask).sum() / mask.sum()
    assert float(dft) == pytest.approx(float(expected), rel=1e-4)
    assert float(dft) < float(cross_entropy) / 100  # a random model's tokens are unlikely: they weigh little


def test_muon_optimizes_the_hidden_matrices_and_adamw_the_rest(tiny):
    trainer = built(tiny, finetuning_type="full", use_muon=True)
    optimizer = trainer.create_optimizer()
    muon, adamw = optimizer.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    in_muon = [names[id(p)] for g in muon.param_groups for p in g["params"]]
    in_adamw = [names[id(p)] for g in adamw.param_groups for p in g["params"]]
    assert in_muon and all(".layers." in n and n.endswith("weight") for n in in_muon)
    assert any("embed_tokens" in n for n in in_adamw) and any("norm" in n for n in in_adamw)
    result = tk.train({**tiny, "finetuning_type": "full", "use_muon": True, "max_steps": 3,
                       "output_dir": tiny["output_dir"] + "-muon"})
    losses = [r["loss"] for r in tk.read_log(result.log_path) if "loss" in r]
    assert losses[-1] < losses[0]


def test_galore_passes_transformers_its_optimizer_and_needs_its_package(tiny, monkeypatch):
    from tunekit.extras import galore_args

    cfg = tk.load_config({**tiny, "finetuning_type": "full"})
    assert galore_args(cfg, ["q_proj"]) == {}
    import importlib.util

    if importlib.util.find_spec("galore_torch") is None:
        with pytest.raises(tk.ConfigError, match="needs the galore-torch package"):
            tk.load_config({**tiny, "finetuning_type": "full", "use_galore": True})
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "galore_torch" else real(name, *a))
    cfg = tk.load_config({**tiny, "finetuning_type": "full", "use_galore": True, "galore_rank": 4})
    args = galore_args(cfg, ["q_proj", "v_proj"])
    assert args["optim"] == "galore_adamw" and args["optim_target_modules"] == ["q_proj", "v_proj"]
    assert "rank=4" in args["optim_args"] and "update_proj_gap=200" in args["optim_args"]


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("galore_torch") is None,
                    reason="galore-torch is not installed (make install installs the galore extra)")
def test_galore_trains_with_galore_torchs_optimizer(tiny):
    result = tk.train({**tiny, "finetuning_type": "full", "use_galore": True, "galore_rank": 4, "max_steps": 3})
    optimizer = result.trainer.optimizer.optimizer
    assert type(optimizer).__module__.startswith("galore_torch")
    projected = [g for g in optimizer.param_groups if "rank" in g]
    assert projected and all(g["rank"] == 4 for g in projected)  # the linear layers' gradients are projected
    losses = [r["loss"] for r in tk.read_log(result.log_path) if "loss" in r]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("keys,words", [
    ({"use_dora": True, "finetuning_type": "full"}, ["use_dora", "finetuning_type: lora"]),
    ({"pissa_convert": True}, ["pissa_init: true"]),
    ({"use_muon": True, "loraplus_lr_ratio": 16}, ["use_muon and loraplus_lr_ratio", "keep one"]),
    ({"stage": "ppo", "reward_model_type": "function", "reward_model": "m:f", "max_new_tokens": 8,
      "loraplus_lr_ratio": 16}, ["loraplus_lr_ratio", "stage=ppo", "own loop"]),
])
def test_combinations_that_cannot_work_are_one_line_errors(tiny, keys, words):
    with pytest.raises(tk.ConfigError) as err:
        tk.load_config({**tiny, **keys})
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)
