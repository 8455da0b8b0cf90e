"""tunekit's PPO trainer: rollouts, scores, advantages and clipped updates, with the parts of the
transformers ``Trainer`` interface that tunekit uses (callbacks, ``train(resume_from_checkpoint)``,
``save_model``, checkpoints, ``state``), so the run recipe treats it like any other stage's trainer.

One training step = one PPO iteration, as in LLaMA-Factory:
1. rollout: sample responses for ``per_device_train_batch_size x gradient_accumulation_steps x
   ppo_buffer_size`` prompts (in mini-batches of the per-device batch), ending at EOS or the limit;
2. score them; per-token reward = -kl_coef x (log pi - log pi_ref), plus the score on the last token;
3. values and GAE advantages; ``ppo_epochs`` passes over the buffer's mini-batches with the clipped
   policy ratio and the clipped value loss, one optimizer step per ``gradient_accumulation_steps``;
4. the adaptive KL controller moves kl_coef so that the KL approaches ``ppo_target``.

The value function is a scalar linear head on the policy's last hidden state (shared backbone, as in
LLaMA-Factory and trl's former value-head models): no second model in memory, which is what a laptop
CPU can afford; the head is saved as ``value_head.safetensors`` next to the adapter. The reference is
the policy with its LoRA adapter disabled (a frozen copy for ``full``/``freeze``). The loop checks the
loss and the weights itself, writes its checkpoints atomically, and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..config import Config
from ..data import prompt_ids
from ..outputs import STAGING, checkpoint_step
from ..safety import check_loss, check_weights, ctrl_c_stops
from .ppo_math import (AdaptiveKL, RunningMoments, gae, kl_k3, kl_penalised_rewards, masked_mean, policy_loss, value_loss,
                       whiten)


def encode_prompt(tokenizer, messages: list[dict], cfg: Config) -> list[int]:
    """The token ids the policy continues from: the chat template with the generation prompt, cut
    from the left to ``cutoff_len - max_new_tokens`` (the end holds the question)."""
    return prompt_ids(tokenizer, messages)[-(cfg.cutoff_len - cfg.max_new_tokens):]


class PPOTrainer:
    """The PPO loop, with the parts of the transformers Trainer interface that tunekit uses:
    callbacks, ``train(resume_from_checkpoint)``, ``save_model``, checkpoints, ``state``."""

    def __init__(self, cfg: Config, args, model, tokenizer, prompts, eval_prompts, reward_fn, callbacks):
        from transformers import TrainerControl, TrainerState, get_scheduler
        from transformers.trainer_callback import CallbackHandler

        self.cfg, self.args, self.model, self.tokenizer = cfg, args, model, tokenizer
        self.reward_fn = reward_fn
        self.prompts = [self._encode(row["prompt"]) for row in prompts]
        self.prompt_texts = [row["prompt"][-1]["content"] for row in prompts]
        self.eval_prompts = eval_prompts
        hidden = model.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        self.device = next(model.parameters()).device
        self.value_head.to(self.device)
        self.ref_model = None if hasattr(model, "disable_adapter") else copy.deepcopy(model).eval().requires_grad_(False)
        self.mini_batch = cfg.per_device_train_batch_size
        self.buffer_size = self.mini_batch * cfg.gradient_accumulation_steps * cfg.ppo_buffer_size
        if cfg.max_steps > 0:
            self.total_steps = cfg.max_steps
        else:
            self.total_steps = max(1, math.ceil(cfg.num_train_epochs * len(self.prompts) / self.buffer_size))
        updates = self.total_steps * cfg.ppo_epochs * cfg.ppo_buffer_size
        params = [p for p in model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * updates)
        self.lr_scheduler = get_scheduler(cfg.lr_scheduler_type, self.optimizer, num_warmup_steps=warmup,
                                          num_training_steps=updates)
        self.kl_ctl = AdaptiveKL(cfg.ppo_init_kl_coef, cfg.ppo_target, cfg.ppo_horizon)
        self.moments = RunningMoments()
        self.state = TrainerState()
        self.control = TrainerControl()
        from transformers.trainer_callback import DefaultFlowCallback

        # DefaultFlowCallback turns logging_steps / save_steps / max_steps into control flags, as in Trainer.
        self.callback_handler = CallbackHandler([DefaultFlowCallback, *callbacks], model, tokenizer, self.optimizer,
                                                self.lr_scheduler)

    # --- rollouts --------------------------------------------------------------------------

    def _encode(self, messages: list[dict]) -> list[int]:
        return encode_prompt(self.tokenizer, messages, self.cfg)

    def _indices(self, step: int) -> list[int]:
        """The prompts of a step: consecutive slices of a fresh seeded permutation per epoch (resumable)."""
        n = len(self.prompts)
        orders: dict[int, list[int]] = {}
        out = []
        for position in range(step * self.buffer_size, (step + 1) * self.buffer_size):
            epoch, index = divmod(position, n)
            if epoch not in orders:
                orders[epoch] = list(range(n))
                random.Random(self.cfg.seed + epoch).shuffle(orders[epoch])
            out.append(orders[epoch][index])
        return out

    def _pad(self, prompts: list[list[int]], responses: list[list[int]]):
        """Prompts left-padded and responses right-padded to common lengths: [batch, P + R] tensors."""
        pad = self.tokenizer.pad_token_id
        p_len, r_len = max(map(len, prompts)), max(max(map(len, responses)), 1)
        ids, attn, mask = [], [], []
        for prompt, response in zip(prompts, responses):
            ids.append([pad] * (p_len - len(prompt)) + prompt + response + [pad] * (r_len - len(response)))
            attn.append([0] * (p_len - len(prompt)) + [1] * (len(prompt) + len(response)) + [0] * (r_len - len(response)))
            mask.append([1] * len(response) + [0] * (r_len - len(response)))
        as_tensor = lambda x: torch.tensor(x, device=self.device)  # noqa: E731
        return as_tensor(ids), as_tensor(attn), as_tensor(mask).float(), p_len

    def _sample(self, prompts: list[list[int]]) -> tuple[list[list[int]], list[str]]:
        """Responses to ``prompts``, generated a per-device batch at a time: (token ids, decoded texts)."""
        responses: list[list[int]] = []
        for start in range(0, len(prompts), self.mini_batch):
            responses.extend(self._generate(prompts[start: start + self.mini_batch]))
        return responses, [self.tokenizer.decode(r, skip_special_tokens=True) for r in responses]

    @torch.no_grad()
    def _generate(self, prompts: list[list[int]]) -> list[list[int]]:
        """Sampled responses (token ids), each ending at its first EOS (kept) or at max_new_tokens."""
        cfg, pad = self.cfg, self.tokenizer.pad_token_id
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        self.model.eval()
        out = self.model.generate(
            input_ids=ids, attention_mask=attn, do_sample=True, max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p, pad_token_id=pad,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        responses = []
        for row in out[:, width:].tolist():
            if self.tokenizer.eos_token_id in row:
                row = row[: row.index(self.tokenizer.eos_token_id) + 1]
            responses.append(row)
        return responses

    def _forward(self, model, ids, attn, p_len, values: bool):
        """Log-probs of the response tokens (and the value head's estimates, and the entropy)."""
        position_ids = (attn.long().cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=attn, position_ids=position_ids, output_hidden_states=values,
                    use_cache=False)
        logits = out.logits[:, p_len - 1: -1].float() / max(self.cfg.temperature, 1e-7)
        log_softmax = logits.log_softmax(-1)
        logprobs = log_softmax.gather(-1, ids[:, p_len:, None]).squeeze(-1)
        if not values:
            return logprobs, None, None
        value = self.value_head(out.hidden_states[-1][:, p_len - 1: -1].float()).squeeze(-1)
        entropy = -(log_softmax.exp() * log_softmax).sum(-1)
        return logprobs, value, entropy

    @torch.no_grad()
    def rollout(self, indices: list[int]) -> dict:
        """Sample, score, and compute old log-probs, reference log-probs and values for a buffer."""
        prompts = [self.prompts[i] for i in indices]
        responses, texts = self._sample(prompts)
        scores = torch.tensor([float(s) for s in self.reward_fn([self.prompt_texts[i] for i in indices], texts)],
                              device=self.device)
        raw = scores.clone()
        if self.cfg.ppo_score_norm:
            self.moments.update(scores)
            scores = (scores - self.moments.mean) / self.moments.std
        ids, attn, mask, p_len = self._pad(prompts, responses)
        self.model.eval()
        old_logprobs, old_values, ref_logprobs = [], [], []
        for start in range(0, len(ids), self.mini_batch):
            part = slice(start, start + self.mini_batch)
            logprobs, values, _ = self._forward(self.model, ids[part], attn[part], p_len, values=True)
            old_logprobs.append(logprobs)
            old_values.append(values)
            ref_logprobs.append(self._reference_logprobs(ids[part], attn[part], p_len))
        old_logprobs, old_values, ref_logprobs = torch.cat(old_logprobs), torch.cat(old_values), torch.cat(ref_logprobs)
        rewards, kl = kl_penalised_rewards(scores, old_logprobs, ref_logprobs, mask, self.kl_ctl.value)
        if self.cfg.ppo_whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, old_values, mask, self.cfg.ppo_gamma, self.cfg.ppo_lambda)
        advantages = whiten(advantages, mask)
        return {"ids": ids, "attn": attn, "mask": mask, "p_len": p_len, "logprobs": old_logprobs,
                "values": old_values * mask, "advantages": advantages, "returns": returns, "raw_scores": raw,
                "scores": scores, "kl": kl.sum(1), "kl_k3": kl_k3(old_logprobs, ref_logprobs, mask).sum(1),
                "lengths": mask.sum(1)}

    def _reference_logprobs(self, ids, attn, p_len):
        if self.ref_model is not None:
            return self._forward(self.ref_model, ids, attn, p_len, values=False)[0]
        with self.model.disable_adapter():
            return self._forward(self.model, ids, attn, p_len, values=False)[0]

    # --- optimisation ----------------------------------------------------------------------

    def update(self, batch: dict) -> dict:
        """``ppo_epochs`` passes over the buffer's mini-batches; returns the averaged statistics."""
        cfg = self.cfg
        self.model.train()
        starts = list(range(0, len(batch["ids"]), self.mini_batch))
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "clip_fraction", "approx_kl",
                                                           "entropy", "loss")}
        trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        for epoch in range(cfg.ppo_epochs):
            order = torch.randperm(len(starts)).tolist()
            for count, which in enumerate(order, 1):
                part = slice(starts[which], starts[which] + self.mini_batch)
                mask = batch["mask"][part]
                logprobs, values, entropy = self._forward(self.model, batch["ids"][part], batch["attn"][part],
                                                          batch["p_len"], values=True)
                pg, clipfrac = policy_loss(logprobs, batch["logprobs"][part], batch["advantages"][part], mask,
                                           cfg.ppo_cliprange)
                vf = value_loss(values, batch["values"][part], batch["returns"][part], mask, cfg.ppo_cliprange_value)
                loss = pg + cfg.ppo_vf_coef * vf
                check_loss(loss, self.state.global_step + 1)
                (loss / cfg.gradient_accumulation_steps).backward()
                if count % cfg.gradient_accumulation_steps == 0 or count == len(order):
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    stats["policy_loss"].append(pg.item())
                    stats["value_loss"].append(vf.item())
                    stats["loss"].append(loss.item())
                    stats["clip_fraction"].append(clipfrac.item())
                    stats["approx_kl"].append(0.5 * masked_mean((logprobs - batch["logprobs"][part]) ** 2, mask).item())
                    stats["entropy"].append(masked_mean(entropy, mask).item())
        return {k: sum(v) / len(v) for k, v in stats.items()}

    def train(self, resume_from_checkpoint: str | None = None):
        """PPO iterations up to the last step; the first Ctrl-C stops at the end of the step, with a checkpoint."""
        from ..callbacks import StopCallback

        stopper = next((c for c in self.callback_handler.callbacks if isinstance(c, StopCallback)), None)
        with ctrl_c_stops(stopper):
            return self._train(resume_from_checkpoint)

    def _train(self, resume_from_checkpoint: str | None):
        from transformers.trainer_utils import TrainOutput

        if resume_from_checkpoint:
            self._load_checkpoint(resume_from_checkpoint)
        else:
            torch.manual_seed(self.cfg.seed)
        args, state, control = self.args, self.state, self.control
        state.max_steps = self.total_steps
        state.logging_steps, state.save_steps = args.logging_steps, args.save_steps
        control = self.callback_handler.on_train_begin(args, state, control)
        losses = []
        while state.global_step < self.total_steps and not control.should_training_stop:
            control = self.callback_handler.on_step_begin(args, state, control)
            batch = self.rollout(self._indices(state.global_step))
            stats = self.update(batch)
            self.kl_ctl.update(batch["kl"].mean().item(), len(batch["ids"]))
            state.global_step += 1
            state.epoch = state.global_step * self.buffer_size / len(self.prompts)
            losses.append(stats["loss"])
            control = self.callback_handler.on_step_end(args, state, control)
            if control.should_log:
                logs = {**stats, "reward": batch["raw_scores"].mean().item(), "reward_norm": batch["scores"].mean().item(),
                        "kl": batch["kl"].mean().item(), "kl_k3": batch["kl_k3"].mean().item(),
                        "kl_coef": self.kl_ctl.value,
                        "response_length": batch["lengths"].mean().item(),
                        "learning_rate": self.lr_scheduler.get_last_lr()[0], "epoch": state.epoch}
                state.log_history.append({**logs, "step": state.global_step})
                control.should_log = False
                control = self.callback_handler.on_log(args, state, control, logs=logs)
            if control.should_save:
                control.should_save = False
                self._save_checkpoint(self.model, trial=None)
        if state.global_step >= self.total_steps and not (Path(args.output_dir) / f"checkpoint-{state.global_step}").exists():
            self._save_checkpoint(self.model, trial=None)
        control = self.callback_handler.on_train_end(args, state, control)
        metrics = {"train_loss": sum(losses) / max(len(losses), 1), "epoch": state.epoch}
        return TrainOutput(state.global_step, metrics["train_loss"], metrics)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean reward of sampled responses to (up to 64) held-out prompts, and their mean KL from the reference:
        ``eval_kl`` the sum over each response's tokens of log pi - log pi_ref (the penalty the rewards pay in
        training), ``eval_kl_k3`` the never-negative k3 estimate of the same KL."""
        rows = list(self.eval_prompts)[:64]
        prompts = [self._encode(row["prompt"]) for row in rows]
        responses, texts = self._sample(prompts)
        scores = self.reward_fn([row["prompt"][-1]["content"] for row in rows], texts)
        kl, k3 = [], []
        size = self.args.per_device_eval_batch_size
        self.model.eval()
        for start in range(0, len(prompts), size):
            ids, attn, mask, p_len = self._pad(prompts[start: start + size], responses[start: start + size])
            logprobs = self._forward(self.model, ids, attn, p_len, values=False)[0]
            ref_logprobs = self._reference_logprobs(ids, attn, p_len)
            kl += ((logprobs - ref_logprobs) * mask).sum(1).tolist()
            k3 += kl_k3(logprobs, ref_logprobs, mask).sum(1).tolist()
        metrics = {"eval_reward": sum(map(float, scores)) / max(len(scores), 1),
                   "eval_kl": sum(kl) / max(len(kl), 1), "eval_kl_k3": sum(k3) / max(len(k3), 1)}
        self.control = self.callback_handler.on_log(self.args, self.state, self.control, logs=metrics)
        return metrics

    # --- saving and resuming ---------------------------------------------------------------

    def save_model(self, output_dir: str | None = None) -> None:
        """The adapter (or model) and the value head."""
        folder = Path(output_dir or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in self.value_head.state_dict().items()}, folder / "value_head.safetensors")

    def _save_checkpoint(self, model, trial=None) -> None:
        """A resumable checkpoint: weights, value head, optimizer, scheduler, PPO and trainer state, RNG.
        Written to a temporary folder and renamed, so a killed run never leaves half a checkpoint."""
        check_weights(self.model, self.state.global_step)
        final = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
        tmp = final.with_name(final.name + STAGING)
        shutil.rmtree(tmp, ignore_errors=True)
        self.save_model(tmp)
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.lr_scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, tmp / "rng_state.pth")
        (tmp / "ppo_state.json").write_text(json.dumps({
            "kl_coef": self.kl_ctl.value, "moments": [self.moments.mean, self.moments.var, self.moments.count]}))
        self.state.save_to_json(str(tmp / "trainer_state.json"))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self._rotate_checkpoints()
        self.control = self.callback_handler.on_save(self.args, self.state, self.control)

    def _rotate_checkpoints(self) -> None:
        limit = self.args.save_total_limit
        if not limit:
            return
        folders = sorted(Path(self.args.output_dir).glob("checkpoint-*"), key=checkpoint_step)
        for folder in folders[:-limit]:
            shutil.rmtree(folder, ignore_errors=True)

    def _load_checkpoint(self, folder: str) -> None:
        from transformers import TrainerState

        path = Path(folder)
        if (path / "adapter_model.safetensors").is_file():
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, load_file(path / "adapter_model.safetensors"))
        else:
            from transformers import AutoModelForCausalLM

            self.model.load_state_dict(AutoModelForCausalLM.from_pretrained(path).state_dict())
        self.value_head.load_state_dict(load_file(path / "value_head.safetensors"))
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
        self.lr_scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
        rng = torch.load(path / "rng_state.pth", weights_only=False)
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        saved = json.loads((path / "ppo_state.json").read_text())
        self.kl_ctl.value = saved["kl_coef"]
        self.moments.mean, self.moments.var, self.moments.count = saved["moments"]
        self.state = TrainerState.load_from_json(str(path / "trainer_state.json"))
        self.state.max_steps = self.total_steps

    def save_state(self) -> None:
        self.state.save_to_json(str(Path(self.args.output_dir) / "trainer_state.json"))

    def save_metrics(self, split: str, metrics: dict) -> None:
        (Path(self.args.output_dir) / f"{split}_results.json").write_text(json.dumps(metrics, indent=2))
