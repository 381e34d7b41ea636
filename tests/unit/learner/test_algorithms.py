"""Advantages, shaping, KL estimators, loss aggregations, clip-higher, the decoupled objective and
truncated IS, each against values computed by hand (1e-6)."""

import math

import pytest
import torch

from relayrl.config import LossConfig
from relayrl.learner.algorithms import advantages, aggregate, kl_penalty, offpolicy_stats, policy_loss
from relayrl.learner.spec import AlgoSpec, overlong_penalty, resolve, zero_variance

TOL = 1e-6


def spec(**kw) -> AlgoSpec:
    base = dict(name="grpo", clip_low=0.2, clip_high=0.2, loss_agg="token_mean", dynamic_sampling=False,
                overlong_buffer=0, overlong_penalty=1.0, max_len=4, adv_eps=1e-4, kl_beta=0.0, kl_estimator="k3",
                objective="naive", tis_cap=None)
    return AlgoSpec(**{**base, **kw})


def test_advantages_per_algorithm_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    std = math.sqrt(0.25)  # sample std of [1,0,0,0]: sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    grpo = [0.75 / (std + 1e-4), -0.25 / (std + 1e-4), -0.25 / (std + 1e-4), -0.25 / (std + 1e-4)]
    assert advantages(r, "grpo").tolist() == pytest.approx(grpo, abs=TOL)
    assert advantages(r, "dapo").tolist() == pytest.approx(grpo, abs=TOL)
    assert advantages(r, "dr_grpo").tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25], abs=TOL)
    # RLOO: r_i minus the mean of the other three
    assert advantages(r, "rloo").tolist() == pytest.approx([1.0, -1 / 3, -1 / 3, -1 / 3], abs=TOL)
    assert advantages(torch.tensor([3.0, 1.0, 2.0]), "rloo").tolist() == pytest.approx([1.5, -1.5, 0.0], abs=TOL)
    assert advantages(torch.tensor([0.5]), "rloo").tolist() == [0.0]
    with pytest.raises(ValueError, match="unknown algorithm"):
        advantages(r, "ppo")


def test_zero_variance_and_overlong_shaping():
    assert zero_variance([1.0, 1.0, 1.0]) and zero_variance([0.3]) and not zero_variance([0.0, 1.0])
    # max_len 10, buffer 4: free up to 6 tokens, then linear down to -1 at 10
    assert overlong_penalty(6, 10, 4) == 0.0
    assert overlong_penalty(8, 10, 4) == pytest.approx(-0.5, abs=TOL)
    assert overlong_penalty(10, 10, 4) == pytest.approx(-1.0, abs=TOL)
    assert overlong_penalty(11, 10, 4) == pytest.approx(-1.0, abs=TOL)
    assert overlong_penalty(7, 10, 4, penalty=0.5) == pytest.approx(-0.125, abs=TOL)
    assert overlong_penalty(10, 10, 0) == 0.0


def test_kl_estimators_hand_computed():
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    lr = math.log(2)  # log policy/reference
    assert float(kl_penalty(logp, ref, "k1")) == pytest.approx(lr, abs=TOL)
    assert float(kl_penalty(logp, ref, "k2")) == pytest.approx(0.5 * lr ** 2, abs=TOL)
    assert float(kl_penalty(logp, ref, "k3")) == pytest.approx(0.5 + lr - 1, abs=TOL)


def test_aggregations_and_shards_sum_to_the_whole():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    assert float(aggregate(x, m, "token_mean")) == pytest.approx(15 / 5, abs=TOL)
    assert float(aggregate(x, m, "seq_mean_token_mean")) == pytest.approx((6 / 3 + 9 / 2) / 2, abs=TOL)
    assert float(aggregate(x, m, "seq_mean_token_sum_norm", max_len=4)) == pytest.approx(15 / 8, abs=TOL)
    for how in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):
        whole = float(aggregate(x, m, how, max_len=4))
        parts = sum(float(aggregate(x[i:i + 1], m[i:i + 1], how, 4, num_rows=2, num_tokens=5.0)) for i in range(2))
        assert parts == pytest.approx(whole, abs=TOL), how


def test_clip_higher_and_dr_grpo_aggregation_hand_computed():
    # row 0: advantage +1, ratios 1.5 and 1.25; row 1: advantage -1, ratios 0.5 and 1.1
    logp = torch.log(torch.tensor([[1.5, 1.25], [0.5, 1.1]]))
    behaviour, mask, adv = torch.zeros(2, 2), torch.ones(2, 2), torch.tensor([1.0, -1.0])
    loss, stats = policy_loss(logp, behaviour, adv, mask, spec(clip_high=0.28))
    # -min(1.5, 1.28), -min(1.25, 1.25), -min(-0.5, -0.8), -min(-1.1, -1.1)
    per_token = [-1.28, -1.25, 0.8, 1.1]
    assert float(loss) == pytest.approx(sum(per_token) / 4, abs=TOL)
    assert stats["clip_frac_low"] == pytest.approx(0.25) and stats["clip_frac_high"] == pytest.approx(0.25)
    assert stats["clip_frac"] == pytest.approx(0.5)
    symmetric, _ = policy_loss(logp, behaviour, adv, mask, spec())  # 1.25 is clipped to 1.2 there
    assert float(symmetric) == pytest.approx((-1.2 - 1.2 + 0.8 + 1.1) / 4, abs=TOL)
    dr, _ = policy_loss(logp, behaviour, adv, mask, spec(clip_high=0.28, loss_agg="seq_mean_token_sum_norm"))
    assert float(dr) == pytest.approx(sum(per_token) / (2 * 4), abs=TOL)  # N * max_len


def test_decoupled_objective_with_truncated_is_hand_computed():
    behaviour = torch.log(torch.tensor([[0.5], [0.2]]))
    prox = torch.log(torch.tensor([[0.6], [0.6]]))
    logp = torch.log(torch.tensor([[0.9], [0.6]])).requires_grad_(True)
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 1)
    # row 0: ratio 0.9/0.6 = 1.5 -> clipped 1.2, weight 0.6/0.5 = 1.2: -1.44
    # row 1: ratio 1, weight 0.6/0.2 = 3, capped at 2: -2 * min(-1, -1) = 2 (uncapped 3)
    loss, stats = policy_loss(logp, behaviour, adv, mask, spec(objective="decoupled", tis_cap=2.0), prox_logp=prox)
    assert float(loss.detach()) == pytest.approx((-1.44 + 2) / 2, abs=TOL)
    assert stats["tis_clip_frac"] == pytest.approx(0.5) and stats["is_weight_mean"] == pytest.approx(1.6, abs=TOL)
    loss.backward()
    # row 0's clipped term is active (no gradient); row 1: d/dlogp of 2 * ratio / 2 tokens = 1
    assert logp.grad.flatten().tolist() == pytest.approx([0.0, 1.0], abs=TOL)
    uncapped, _ = policy_loss(logp, behaviour, adv, mask, spec(objective="decoupled"), prox_logp=prox)
    assert float(uncapped.detach()) == pytest.approx((-1.44 + 3) / 2, abs=TOL)


def test_mask_mode_drops_tokens_above_the_cap_as_areal_does():
    behaviour = torch.log(torch.tensor([[0.5], [0.2]]))
    prox = torch.log(torch.tensor([[0.6], [0.6]]))
    logp = torch.log(torch.tensor([[0.9], [0.6]])).requires_grad_(True)
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 1)
    # row 0 as above (-1.44); row 1's weight 3 exceeds the cap 2: masked out, its loss 0 but it still
    # counts in the token mean's denominator (AReaL divides by the loss mask, not the kept tokens)
    loss, stats = policy_loss(logp, behaviour, adv, mask, spec(objective="decoupled", tis_cap=2.0, tis_mode="mask"),
                              prox_logp=prox)
    assert float(loss.detach()) == pytest.approx(-1.44 / 2, abs=TOL)
    assert stats["tis_clip_frac"] == pytest.approx(0.5) and stats["is_weight_mean"] == pytest.approx(0.6, abs=TOL)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([0.0, 0.0], abs=TOL)  # row 0 clipped, row 1 masked


def test_k3_stays_finite_and_pulls_back_a_token_the_policy_made_unlikely():
    logp = torch.tensor([[-60.0, -1.0, 0.0, -4.0]], requires_grad=True)  # a token whose probability collapsed
    ref = torch.tensor([[-1.0, -60.0, 0.0, -1.0]])
    k3 = kl_penalty(logp, ref, "k3")
    # ref - logp = 59 -> clamped to 20 -> exp(20) - 21; -59 -> -20 -> exp(-20) + 19; 3 -> exp(3) - 4
    expected = [math.exp(20) - 21, math.exp(-20) + 19, 0.0, math.exp(3) - 4]
    assert k3.tolist()[0] == pytest.approx(expected, rel=1e-5)
    assert torch.isfinite(kl_penalty(torch.tensor([-200.0]), torch.tensor([0.0]), "k3")).all()
    k3.sum().backward()
    assert torch.isfinite(logp.grad).all()
    # 20x less likely than the reference: the gradient pushes it back up (d/dlogp = 1 - exp(ref - logp));
    # a clamp of the value at 10 (verl's) made it 0 here, and DAPO collapsed on the quickstart
    assert float(logp.grad[0, 3]) == pytest.approx(1 - math.exp(3), rel=1e-5)


def test_clip_fraction_counts_only_tokens_where_the_clip_is_active():
    behaviour = torch.zeros(4, 1)
    logp = torch.log(torch.tensor([[1.5], [1.5], [0.5], [0.5]]))
    adv, mask = torch.tensor([1.0, -1.0, 1.0, -1.0]), torch.ones(4, 1)
    _, stats = policy_loss(logp, behaviour, adv, mask, spec())
    # active: ratio 1.5 with A > 0 (the clip caps the gain) and ratio 0.5 with A < 0; the other two
    # keep their unclipped term, so the clip changes nothing for them
    assert stats["clip_frac"] == pytest.approx(0.5)
    assert stats["clip_frac_high"] == pytest.approx(0.25) and stats["clip_frac_low"] == pytest.approx(0.25)


def test_decoupled_equals_naive_when_the_behaviour_is_the_proximal_policy():
    behaviour = torch.log(torch.tensor([[0.3, 0.4], [0.2, 0.7]]))
    logp = torch.log(torch.tensor([[0.35, 0.5], [0.1, 0.7]]))
    adv, mask = torch.tensor([0.7, -1.3]), torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    naive, _ = policy_loss(logp, behaviour, adv, mask, spec())
    decoupled, stats = policy_loss(logp, behaviour, adv, mask, spec(objective="decoupled"), prox_logp=behaviour)
    assert float(decoupled) == pytest.approx(float(naive), abs=TOL) and stats["is_weight_mean"] == pytest.approx(1.0)


def test_offpolicy_stats_hand_computed():
    behaviour = torch.log(torch.tensor([[0.5], [0.2]]))
    prox = torch.log(torch.tensor([[0.6], [0.6]]))
    s = offpolicy_stats(prox, behaviour, torch.ones(2, 1))
    w = [1.2, 3.0]  # prox / behaviour
    assert s["mismatch_kl"] == pytest.approx(sum(x - math.log(x) - 1 for x in w) / 2, abs=TOL)
    assert s["mismatch_kl_k1"] == pytest.approx(-sum(math.log(x) for x in w) / 2, abs=TOL)
    assert s["ess"] == pytest.approx(sum(w) ** 2 / (2 * sum(x * x for x in w)), abs=TOL)
    same = offpolicy_stats(prox, prox, torch.ones(2, 1))
    assert same["mismatch_kl"] == pytest.approx(0.0, abs=TOL) and same["ess"] == pytest.approx(1.0, abs=TOL)


def test_kl_term_enters_the_loss_with_its_estimator():
    logp, ref = torch.log(torch.tensor([[0.5]])), torch.log(torch.tensor([[0.25]]))
    for est, value in (("k1", math.log(2)), ("k2", 0.5 * math.log(2) ** 2), ("k3", 0.5 + math.log(2) - 1)):
        loss, stats = policy_loss(logp, logp, torch.tensor([0.0]), torch.ones(1, 1),
                                  spec(kl_beta=0.1, kl_estimator=est), ref_logp=ref)
        assert float(loss) == pytest.approx(0.1 * value, abs=TOL) and stats["kl"] == pytest.approx(value, abs=TOL)


def test_resolve_fills_each_algorithm_s_defaults():
    dapo = resolve(LossConfig(algorithm="dapo"), max_new_tokens=16)
    assert (dapo.clip_low, dapo.clip_high, dapo.loss_agg, dapo.dynamic_sampling, dapo.overlong_buffer) == \
        (0.2, 0.28, "token_mean", True, 3)
    grpo = resolve(LossConfig(), max_new_tokens=16)
    assert (grpo.clip_high, grpo.loss_agg, grpo.dynamic_sampling, grpo.overlong_buffer) == (0.2, "token_mean", False, 0)
    assert resolve(LossConfig(algorithm="dr_grpo"), 16).loss_agg == "seq_mean_token_sum_norm"
    assert resolve(LossConfig(algorithm="rloo"), 16).loss_agg == "seq_mean_token_mean"
    explicit = resolve(LossConfig(algorithm="dapo", clip_eps_high=0.3, dynamic_sampling=False, overlong_buffer=0), 16)
    assert (explicit.clip_high, explicit.dynamic_sampling, explicit.overlong_buffer) == (0.3, False, 0)
    with pytest.raises(ValueError, match="tis_cap needs"):
        LossConfig(tis_cap=2.0)
    with pytest.raises(ValueError, match="exceeds max_new_tokens"):
        resolve(LossConfig(overlong_buffer=20), 16)
