"""GRPO's advantages, batch layout and clipped token-level loss against hand-computed values."""

import math

import pytest
import torch

from relayrl.learner.algorithms import group_advantages, grpo_loss
from relayrl.learner.tokens import build_batch


def test_group_advantages_hand_computed():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), eps=1e-4)
    std = math.sqrt(1 / 3)  # sample std of [1, 0, 0, 1]
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4)]
    assert adv.tolist() == pytest.approx(expected, abs=1e-9)


def test_zero_variance_group_has_zero_advantage():
    assert group_advantages(torch.tensor([0.7, 0.7, 0.7])).tolist() == [0.0, 0.0, 0.0]


def test_clipped_token_level_loss_hand_computed():
    # row 0: ratios 1.5 and 0.5 with advantage +1; row 1: ratio 1.5 with advantage -2, one padded token
    behaviour = torch.zeros(2, 2)
    logp = torch.log(torch.tensor([[1.5, 0.5], [1.5, 7.0]]))
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, stats = grpo_loss(logp, behaviour, torch.tensor([1.0, -2.0]), mask, clip_eps=0.2)
    # per token: -min(1.5, 1.2) = -1.2; -min(0.5, 0.8) = -0.5; -min(-3.0, -2.4) = 3.0
    assert float(loss) == pytest.approx((-1.2 - 0.5 + 3.0) / 3, abs=1e-6)
    # every unmasked ratio is outside [0.8, 1.2], but the clip is active only where it changes the
    # minimum: ratio 1.5 with a positive advantage. Ratio 0.5 with A > 0 and ratio 1.5 with A < 0
    # keep their unclipped term (their loss is -0.5 and 3.0 above), so they do not count.
    assert stats["clip_frac"] == pytest.approx(1 / 3)
    assert stats["clip_frac_high"] == pytest.approx(1 / 3) and stats["clip_frac_low"] == 0.0


def test_loss_gradient_pushes_up_positive_advantage():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    loss, _ = grpo_loss(logp, logp.detach(), torch.tensor([2.0]), torch.ones(1, 2), clip_eps=0.2)
    loss.backward()
    # d/dlogp of -(ratio * A) / n_tokens at ratio 1 is -A / 2
    assert logp.grad[0].tolist() == pytest.approx([-1.0, -1.0], abs=1e-6)


def test_k3_kl_term_hand_computed():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    loss, stats = grpo_loss(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 1), 0.2, ref, kl_beta=0.1)
    k3 = 0.25 / 0.5 - math.log(0.25 / 0.5) - 1  # exp(ref - logp) - (ref - logp) - 1
    assert stats["kl"] == pytest.approx(k3, abs=1e-6)
    assert float(loss) == pytest.approx(0.1 * k3, abs=1e-6)


def test_build_batch_aligns_completion_tokens_and_logprobs():
    batch = build_batch([([1, 5], [7, 2], [-0.1, -0.2]), ([1], [9], [-0.3])], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 5, 7, 2], [1, 9, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    # logits at position t predict token t + 1: completion tokens are targets 1.. of row 0, 0 of row 1
    assert batch.loss_mask.tolist() == [[0, 1, 1], [1, 0, 0]]
    assert batch.targets.tolist() == [[5, 7, 2], [9, 0, 0]]
    assert torch.allclose(batch.behaviour_logprobs, torch.tensor([[0, -0.1, -0.2], [-0.3, 0, 0]]))


def test_build_batch_rejects_mismatched_logprobs():
    with pytest.raises(ValueError, match="2 tokens but 1 logprobs"):
        build_batch([([1], [7, 2], [-0.1])], pad_id=0)
