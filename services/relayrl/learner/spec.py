"""An algorithm's choices (`AlgoSpec`, resolved from the learner config) and the reward pieces that
need nothing else: which samples count, DAPO's overlong shaping, and the zero-variance test.

These are plain Python on purpose. The learner's intake decides whether a group is worth training
(under dynamic sampling, a group whose shaped rewards are all equal carries no gradient) before
any tensor exists, so it must not need torch; the update (`update.prepare`) shapes the rewards of
the groups it trains with the very same functions, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from relayrl.wire import common_pb2

_DEFAULT_AGG = {"grpo": "token_mean", "dr_grpo": "seq_mean_token_sum_norm", "dapo": "token_mean",
                "rloo": "seq_mean_token_mean"}


@dataclass(frozen=True)
class AlgoSpec:
    """Every choice the loss makes, resolved from `LearnerConfig` (nulls filled per algorithm)."""

    name: str
    clip_low: float
    clip_high: float
    loss_agg: str
    dynamic_sampling: bool
    overlong_buffer: int
    overlong_penalty: float
    max_len: int
    adv_eps: float
    kl_beta: float
    kl_estimator: str
    objective: str
    tis_cap: float | None
    tis_mode: str = "truncate"


def resolve(lc, max_new_tokens: int) -> AlgoSpec:
    """The spec of `lc` (the `learner.loss` section, a LossConfig) for completions of at most
    `max_new_tokens`."""
    dapo = lc.algorithm == "dapo"
    high = lc.clip_eps_high if lc.clip_eps_high is not None else (0.28 if dapo else lc.clip_eps)
    buffer = lc.overlong_buffer if lc.overlong_buffer is not None else (max(1, max_new_tokens // 5) if dapo else 0)
    if buffer > max_new_tokens:
        raise ValueError(f"learner.loss.overlong_buffer ({buffer}) exceeds max_new_tokens ({max_new_tokens})")
    return AlgoSpec(
        name=lc.algorithm, clip_low=lc.clip_eps, clip_high=high, loss_agg=lc.loss_agg or _DEFAULT_AGG[lc.algorithm],
        dynamic_sampling=lc.dynamic_sampling if lc.dynamic_sampling is not None else dapo,
        overlong_buffer=buffer, overlong_penalty=lc.overlong_penalty, max_len=max_new_tokens, adv_eps=lc.adv_eps,
        kl_beta=lc.kl_beta, kl_estimator=lc.kl_estimator, objective=lc.objective, tis_cap=lc.tis_cap,
        tis_mode=lc.tis_mode)


def overlong_penalty(length: int, max_len: int, buffer: int, penalty: float = 1.0) -> float:
    """DAPO's soft overlong punishment: 0 up to max_len - buffer, then linear down to -penalty
    at max_len, -penalty beyond. buffer 0 disables it."""
    if buffer <= 0:
        return 0.0
    expected = max_len - buffer
    if length <= expected:
        return 0.0
    if length <= max_len:
        return (expected - length) / buffer * penalty
    return -penalty


def model_tokens(sample: common_pb2.Sample) -> int:
    """Completion tokens the model produced (an agent episode's observation tokens excluded): what
    the loss is over, and the length DAPO's overlong shaping judges."""
    return sum(sample.loss_mask) if len(sample.loss_mask) else len(sample.completion_token_ids)


def zero_variance(rewards: list[float]) -> bool:
    """True when every reward of a group is equal: its advantages are all zero."""
    return len(rewards) < 2 or max(rewards) - min(rewards) == 0


def valid_indices(group: common_pb2.Group) -> list[int]:
    """Samples with a score (infrastructure errors never enter an advantage)."""
    return [i for i, s in enumerate(group.scores) if s.outcome != common_pb2.OUTCOME_INFRA_ERROR]


def shaped_rewards(group: common_pb2.Group, spec: AlgoSpec) -> tuple[list[int], list[float], list[float]]:
    """(valid sample indices, their rewards, rewards plus overlong shaping)."""
    keep = valid_indices(group)
    raw = [group.scores[i].reward for i in keep]
    shaped = [r + overlong_penalty(model_tokens(group.samples[i]), spec.max_len, spec.overlong_buffer,
                                   spec.overlong_penalty) for r, i in zip(raw, keep)]
    return keep, raw, shaped
