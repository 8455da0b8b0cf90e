"""tunekit/lm_head.py: on a CPU, trl's fused LM head is replaced by one that projects only the labelled
positions; it must give what trl's gives (log-probs, metrics, loss, gradients) and leave generation alone."""

import pytest
import torch

import tunekit as tk
from tunekit.lm_head import CompactLMHead, score_labelled_positions


def _model_and_batch():
    from trl.trainer.utils import add_fused_lm_head

    model, tokenizer = tk.load_model({"model_name_or_path": "tiny-random-llama", "dataset": "identity",
                                      "lora_target": "all", "lora_rank": 4})
    torch.manual_seed(0)
    for name, param in model.named_parameters():  # a trained adapter (a fresh one adds zero): gradients reach A
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    ids = torch.randint(5, tokenizer.vocab_size, (2, 12))
    attention = torch.ones_like(ids)
    attention[1, 9:] = 0  # the second row is padded
    labels = ids.clone()
    labels[:, :5] = -100  # the prompt
    labels[1, 9:] = -100  # the padding
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    return model, {"input_ids": ids, "attention_mask": attention, "labels": labels}


def _run(model, batch):
    model.zero_grad()
    out = model(**batch, fused_lm_head=True)
    (out.log_probs.sum() + out.loss).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out, grads


def test_compact_head_gives_what_trls_fused_head_gives():
    model, batch = _model_and_batch()
    with torch.no_grad():
        logits_before = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    theirs, their_grads = _run(model, batch)
    score_labelled_positions(model.get_base_model())
    ours, our_grads = _run(model, batch)

    assert ours.label_mask.equal(theirs.label_mask) and int(ours.label_mask.sum()) == 7 + 4
    for field in ("log_probs", "entropy", "mean_logits"):
        mine, trls = getattr(ours, field).detach(), getattr(theirs, field).detach()
        assert torch.allclose(mine, trls, atol=1e-4), field
        assert (mine[~ours.label_mask] == 0).all()  # zero where nothing is scored
    assert ours.is_top1.equal(theirs.is_top1)
    assert float(ours.loss) == pytest.approx(float(theirs.loss), rel=1e-5)
    assert any(g.abs().sum() > 0 for g in our_grads.values())
    for name, grad in our_grads.items():
        assert torch.allclose(grad, their_grads[name], atol=1e-5), name
    with torch.no_grad():  # without fused_lm_head: the model's own forward, full logits (generation needs them)
        logits_after = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits_after.equal(logits_before)


def test_a_batch_with_no_labelled_position_still_backpropagates():
    model, batch = _model_and_batch()
    score_labelled_positions(model.get_base_model())
    out = model(**{**batch, "labels": torch.full_like(batch["labels"], -100)}, fused_lm_head=True)
    assert float(out.loss) == 0 and out.log_probs.requires_grad
    out.loss.backward()  # a differentiable zero, as trl's gives


@pytest.mark.parametrize("stage,dataset", [("sft", "identity"), ("dpo", "dpo_en_demo")])
def test_cpu_runs_of_trls_trainers_use_the_compact_head_and_learn(tiny, stage, dataset):
    result = tk.train({**tiny, "stage": stage, "dataset": dataset, "max_steps": 6, "max_samples": 24})
    assert isinstance(result.trainer, CompactLMHead)
    assert result.trainer.model.get_base_model().forward.__func__.__name__ == "compact_forward"
    log = [r for r in tk.read_log(result.log_path) if "loss" in r]
    assert log[-1]["loss"] < log[0]["loss"]
    metric = "mean_token_accuracy" if stage == "sft" else "rewards/accuracies"
    assert all(metric in r for r in log)  # trl's metrics still come from the head's outputs
