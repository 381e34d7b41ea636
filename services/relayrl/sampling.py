"""The sampling distribution the engines draw from and the learner scores against: one definition.

An actor samples each token from the model's logits divided by the temperature, restricted to
the top-k tokens and then to the top-p nucleus (`filter_logits`), and records the token's
log-probability under that filtered distribution (what vLLM calls `processed_logprobs`). The
learner's importance ratios compare its own log-probabilities with those, so it must score the
same distribution: `target_logprobs` applies the same temperature and filter to the learner's
logits. Without the filter every ratio is biased below 1 when `top_p < 1` (the learner's
probability of a sampled token is spread over the tokens the engine could never draw).

A target the learner's own filter excludes (the learner moved since the engine sampled) has
probability 0 under the filtered policy; its log-probability is floored at `LOGP_FLOOR` rather
than -inf, so ratios and KL estimates stay finite (the ratio is 0 and carries no gradient). torch
is imported by the functions, not by this module.
"""

from __future__ import annotations

LOGP_FLOOR = -1e4
"""The log-probability of a token outside the filtered distribution (exp() of it is 0 in float32)."""


def filter_logits(logits, top_k: int, top_p: float):
    """Mask logits outside top-k / the top-p nucleus with -inf (0 / 1 disable each).

    Top-p keeps the smallest set of most likely tokens whose mass reaches `top_p`: a token is
    dropped when the mass of the tokens more likely than it already reaches `top_p` (the most
    likely token always stays) — vLLM's rule."""
    import torch

    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = (probs.cumsum(-1) - probs) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def filters(top_k: int, top_p: float) -> bool:
    """True when top-k or top-p restricts the distribution."""
    return bool(top_k) or top_p < 1.0


def target_logprobs(logits, targets, temperature: float, top_k: int = 0, top_p: float = 1.0):
    """(log-probability of each target, entropy at each position) under the sampling distribution:
    `logits` [..., V] (float32) at `temperature`, filtered by top-k / top-p; `targets` [...]."""
    import torch

    scaled = logits / temperature
    if filters(top_k, top_p):
        scaled = filter_logits(scaled, top_k, top_p)
    logp_all = torch.log_softmax(scaled, dim=-1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    with torch.no_grad():
        probs = logp_all.exp()
        entropy = -(probs * logp_all.masked_fill(probs == 0, 0.0)).sum(-1)
    if filters(top_k, top_p):
        logp = logp.clamp(min=LOGP_FLOOR)  # a target outside the filter: probability 0, no gradient
    return logp, entropy
