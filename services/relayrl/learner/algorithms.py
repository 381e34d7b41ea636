"""The R1-family policy-gradient recipes as pure tensor functions: advantages, losses, KL.

One loss covers them all; an `AlgoSpec` (resolved from the learner config in `spec`, where the
torch-free reward shaping lives too) picks the pieces:

- **GRPO** (DeepSeekMath): advantage (r - mean) / (std + eps) within the group.
- **Dr.GRPO** (Liu et al., "Understanding R1-Zero-like training"): advantage r - mean (no std),
  and token losses summed per sequence and divided by a constant (N * max_new_tokens), so neither
  the group's spread nor a completion's length rescales its gradient.
- **DAPO** (Yu et al.): clip-higher (a wider upper clip range), dynamic sampling (groups with equal
  rewards carry no gradient and are skipped), token-level loss, soft overlong punishment.
- **RLOO** (Ahmadian et al.): leave-one-out baseline, r_i - mean_{j!=i} r_j = G/(G-1) (r_i - mean).

Off-policy correction: the *naive* objective takes PPO's ratio against the behaviour logprobs the
actor sampled with. The *decoupled* objective (Hilton et al.; AReaL) takes it against the proximal
policy (the learner's own logprobs before the batch's first update) and weights each token by
proximal / behaviour, optionally capped (truncated importance sampling, Yao et al.: the weight
truncated to the cap; or AReaL's mask: tokens above the cap dropped), which also absorbs the
numeric mismatch between the inference engine and the learner. The
mismatch is logged as KL(behaviour || proximal) and the effective sample size of the weights.
"""

from __future__ import annotations

import torch

from relayrl.learner.spec import AlgoSpec


# -- rewards and advantages ------------------------------------------------------------------------
def advantages(rewards: torch.Tensor, kind: str, eps: float = 1e-4) -> torch.Tensor:
    """One advantage per completion of a group (float64) under `kind`'s baseline."""
    r = rewards.to(torch.float64)
    n = r.numel()
    if n < 2:
        return torch.zeros_like(r)
    centred = r - r.mean()
    if kind in ("grpo", "dapo"):
        return centred / (r.std(unbiased=True) + eps)
    if kind == "dr_grpo":
        return centred
    if kind == "rloo":
        return centred * n / (n - 1)  # r_i - mean of the others
    raise ValueError(f"unknown algorithm {kind!r}")


# -- losses ----------------------------------------------------------------------------------------
K3_LOG_RATIO_BOUND = 20.0
"""k3's log-ratio is clamped to +-this (as verl's `low_var_kl`), so a token whose probability
collapsed (or a filtered target's floor) cannot make it inf. Its value is not clamped further:
verl clamps it to 10 as well, which zeroes the KL's gradient wherever the policy made a token
more than ~13x less likely than the reference, the very tokens the KL term should pull back
(measured: DAPO on the quickstart collapsed to entropy 0.01 with that clamp, 0.7-0.9 without)."""


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman's k1-k3)."""
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio ** 2
    if estimator == "k3":
        # exp(ref - logp) - (ref - logp) - 1 >= 0, its log-ratio clamped to [-20, 20] (finite)
        ref_minus = torch.clamp(-log_ratio, min=-K3_LOG_RATIO_BOUND, max=K3_LOG_RATIO_BOUND)
        return torch.exp(ref_minus) - ref_minus - 1
    raise ValueError(f"unknown KL estimator {estimator!r}")


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str, max_len: int | None = None,
              num_rows: int | None = None, num_tokens: float | None = None) -> torch.Tensor:
    """Reduce [N, T] token losses to a scalar.

    `num_rows` / `num_tokens` are the batch totals when `per_token` is one shard of a batch split
    across processes: the shards' results then sum to the whole batch's value."""
    masked = per_token * mask
    rows = num_rows if num_rows is not None else per_token.shape[0]
    if how == "token_mean":
        total = num_tokens if num_tokens is not None else mask.sum().clamp(min=1)
        return masked.sum() / total
    if how == "seq_mean_token_mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / rows
    if how == "seq_mean_token_sum_norm":
        if not max_len:
            raise ValueError("seq_mean_token_sum_norm needs max_len")
        return masked.sum() / (rows * max_len)
    raise ValueError(f"unknown loss aggregation {how!r}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def offpolicy_sums(prox_logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """The sums `offpolicy_stats` is made of (they add up across shards and ranks): with
    w = proximal / behaviour per completion token, sum_w, sum_w2, sum_kl (k3 of KL(behaviour ||
    proximal): w - log w - 1), sum_k1 (-log w), n tokens, and max_w."""
    log_w = (prox_logp - behaviour_logp).detach().double()
    m = mask.double()
    w = torch.exp(log_w)
    return {"sum_w": float((w * m).sum()), "sum_w2": float((w ** 2 * m).sum()),
            "sum_kl": float(((w - log_w - 1) * m).sum()), "sum_k1": float((-log_w * m).sum()),
            "n": float(m.sum()), "max_w": float((w * m).max()) if m.numel() else 0.0}


def offpolicy_stats(prox_logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """How far the behaviour policy (the engine) is from the learner's proximal policy.

    mismatch_kl: k3 estimate of KL(behaviour || proximal) on the behaviour's samples; mismatch_kl_k1
    the plain log-ratio mean; ess: effective sample size (sum w)^2 / (n sum w^2) of the weights
    w = proximal / behaviour, 1 when the two agree."""
    s = offpolicy_sums(prox_logp, behaviour_logp, mask)
    n = max(s["n"], 1.0)
    return {"mismatch_kl": s["sum_kl"] / n, "mismatch_kl_k1": s["sum_k1"] / n,
            "ess": s["sum_w"] ** 2 / max(n * s["sum_w2"], 1e-300), "is_weight_max": s["max_w"]}


def policy_loss(logp: torch.Tensor, behaviour_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                spec: AlgoSpec, prox_logp: torch.Tensor | None = None, ref_logp: torch.Tensor | None = None,
                num_rows: int | None = None, num_tokens: float | None = None) -> tuple[torch.Tensor, dict]:
    """The clipped surrogate (+ KL) of `spec`; `advantages` has one value per row ([N]).

    With `prox_logp` (the decoupled objective) the ratio is logp / prox and each token is weighted
    by prox / behaviour (detached; above `spec.tis_cap` truncated to the cap, or with
    `spec.tis_mode` "mask" zeroed, AReaL's default); otherwise the ratio is taken against the
    behaviour logprobs. `clip_frac` counts the tokens where the clip is active: the ratio above
    1 + clip_high with a positive advantage, or below 1 - clip_low with a negative one (elsewhere
    the unclipped term is the minimum and the clip changes nothing)."""
    adv = advantages.to(logp.dtype)[:, None]
    stats: dict[str, float] = {}
    if prox_logp is None:
        ratio = torch.exp(logp - behaviour_logp)
        weight = None
    else:
        ratio = torch.exp(logp - prox_logp)
        weight = torch.exp(prox_logp - behaviour_logp).detach()
        if spec.tis_cap is not None:
            over = weight > spec.tis_cap
            stats["tis_clip_frac"] = float(masked_mean(over.float(), mask))
            weight = weight.masked_fill(over, 0.0) if spec.tis_mode == "mask" else weight.clamp(max=spec.tis_cap)
        stats["is_weight_mean"] = float(masked_mean(weight, mask))
    clipped = torch.clamp(ratio, 1 - spec.clip_low, 1 + spec.clip_high)
    per_token = -torch.minimum(ratio * adv, clipped * adv)
    if weight is not None:
        per_token = per_token * weight
    low = ((ratio < 1 - spec.clip_low) & (adv < 0)).float()
    high = ((ratio > 1 + spec.clip_high) & (adv > 0)).float()
    stats.update(clip_frac=float(masked_mean(low + high, mask)), clip_frac_low=float(masked_mean(low, mask)),
                 clip_frac_high=float(masked_mean(high, mask)), ratio_mean=float(masked_mean(ratio.detach(), mask)))
    if ref_logp is not None and spec.kl_beta > 0:
        kl = kl_penalty(logp, ref_logp, spec.kl_estimator)
        per_token = per_token + spec.kl_beta * kl
        stats["kl"] = float(masked_mean(kl.detach(), mask))
    loss = aggregate(per_token, mask, spec.loss_agg, spec.max_len, num_rows, num_tokens)
    return loss, stats


# -- GRPO's case, for callers that need no spec --------------------------------------------------
def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """(r - mean) / (std + eps) within one group; std is the sample (unbiased) std, as in TRL."""
    return advantages(rewards, "grpo", eps)


def grpo_loss(logp: torch.Tensor, behaviour_logp: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, clip_eps: float, ref_logp: torch.Tensor | None = None,
              kl_beta: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level PPO-clipped surrogate with a k3 KL term; `advantages` is one value per row ([N]).

    The GRPO case of `policy_loss` (symmetric clip, naive objective)."""
    spec = AlgoSpec(name="grpo", clip_low=clip_eps, clip_high=clip_eps, loss_agg="token_mean", dynamic_sampling=False,
                    overlong_buffer=0, overlong_penalty=0.0, max_len=0, adv_eps=1e-4, kl_beta=kl_beta,
                    kl_estimator="k3", objective="naive", tis_cap=None, tis_mode="truncate")
    return policy_loss(logp, behaviour_logp, advantages, mask, spec, ref_logp=ref_logp)
