"""The learner's device, precision, activation checkpointing and eval-mode proximal forward."""

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM

from relayrl.config import LearnerConfig, LossConfig, RunConfig
from relayrl.learner import build
from relayrl.learner.policy import Policy
from relayrl.learner.spec import resolve
from relayrl.learner.tokens import build_batch, eval_mode, has_dropout, token_logprobs
from relayrl.learner.update import prepare, update
from tests.integration.test_resume import groups


def _policy(model_dir, **learner) -> Policy:
    cfg = RunConfig(learner=LearnerConfig(**learner))
    return Policy(cfg, resolve(cfg.learner.loss, cfg.rollout.sampling.max_new_tokens), str(model_dir))


def test_device_auto_is_the_cpu_here_and_cuda_without_a_gpu_is_refused():
    assert not torch.cuda.is_available()  # this machine; the CUDA path runs in benchmarks/gpu.sh
    assert build.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="learner.device is cuda, but torch sees no CUDA device"):
        build.resolve_device("cuda")


def test_bf16_keeps_fp32_master_weights_and_fp32_logprob_math(tiny_model_dir):
    fp32, bf16 = _policy(tiny_model_dir), _policy(tiny_model_dir, precision="bf16")
    batch = build_batch(prepare(groups(2, seed=1), fp32.spec).rows, 0)
    with torch.no_grad():
        exact, _ = token_logprobs(fp32.model, batch, 1.0)
        mixed, _ = token_logprobs(bf16.model, batch, 1.0, autocast_dtype=torch.bfloat16)
    assert mixed.dtype == torch.float32  # logits cast before the log-softmax
    diff = float(((mixed - exact) * batch.loss_mask).abs().max())
    assert 1e-4 < diff < 0.1  # the forward really ran in bf16 (~3 significant digits), and close
    stats = bf16.train(groups(2, seed=1))
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # AdamW updates fp32 weights
    assert stats["grad_norm"] > 0 and abs(stats["loss"] - fp32.train(groups(2, seed=1))["loss"]) < 0.05


def test_activation_checkpointing_changes_the_memory_not_the_update(tiny_model_dir):
    plain = _policy(tiny_model_dir, loss=LossConfig(kl_beta=0.05))
    recomputed = _policy(tiny_model_dir, loss=LossConfig(kl_beta=0.05), activation_checkpointing=True)
    assert recomputed.model.is_activation_checkpointing and not plain.model.is_activation_checkpointing
    data = groups(2, seed=2)
    a, b = plain.train(data), recomputed.train(data)
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-7)
    for (name, p), q in zip(plain.model.named_parameters(), recomputed.model.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-7, msg=name)


def test_the_proximal_forward_runs_without_dropout(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attention_dropout=0.5).train()
    assert has_dropout(model) and not has_dropout(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    spec = replace(resolve(LossConfig(), 16), objective="decoupled")
    rows = prepare(groups(2, seed=3), spec)
    with torch.no_grad(), eval_mode(model):  # the actor's logprobs: the same weights, no dropout
        logp, _ = token_logprobs(model, build_batch(rows.rows, 0), 1.0)
    mask = build_batch(rows.rows, 0).loss_mask
    rows.rows = [(p, c, [float(x) for x in logp[i][mask[i].bool()]], m) for i, (p, c, _, m) in enumerate(rows.rows)]
    torch.manual_seed(0)
    stats = update(model, torch.optim.AdamW(model.parameters(), lr=1e-3), None, rows, spec, 1.0, 0, 1.0)
    # proximal == behaviour exactly: the one-minibatch shortcut (the train-mode logprobs, dropout
    # on) would make them differ and the mismatch KL positive
    assert stats["mismatch_kl"] == pytest.approx(0.0, abs=1e-9) and stats["ess"] == pytest.approx(1.0)
    assert stats["ratio_mean"] != pytest.approx(1.0, abs=1e-4)  # the differentiated forward has dropout
    assert model.training  # back in train mode after the eval-mode forward
