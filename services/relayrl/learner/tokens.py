"""Token batches for the policy: prompt + completion rows as aligned tensors, and their logprobs.

The learner and the engines that are checked against it (`tests/unit/test_engine.py`, the vLLM
tests) score completions the same way: `build_batch` right-pads (prompt ids, completion ids,
behaviour logprobs) rows and marks the completion tokens, and `token_logprobs` runs the model once
over the batch and returns, at every position, the log-probability of the next token at the
sampling temperature and the entropy there. Logits at position t predict token t + 1, so the
targets, the loss mask and the behaviour logprobs are all aligned with positions 0..L-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenBatch:
    """Prompt + completion rows, right-padded, with the completion tokens marked."""

    input_ids: torch.Tensor  # [N, L]
    attention_mask: torch.Tensor  # [N, L]
    targets: torch.Tensor  # [N, L-1]: the token predicted at each position
    loss_mask: torch.Tensor  # [N, L-1]: 1 where the target is a completion token
    behaviour_logprobs: torch.Tensor  # [N, L-1], aligned with targets


def build_batch(rows: list[tuple], pad_id: int) -> TokenBatch:
    """rows of (prompt ids, completion ids, behaviour logprobs[, loss mask]) -> aligned tensors.

    The optional fourth item is an agent episode's per-token loss mask (1: a model token, 0: an
    observation token, which is then no target of the loss); absent or empty: every completion
    token is the model's."""
    width = max(len(r[0]) + len(r[1]) for r in rows)
    n = len(rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros(n, width, dtype=torch.long)
    mask = torch.zeros(n, width - 1)
    old = torch.zeros(n, width - 1)
    for i, (prompt, completion, logps, *rest) in enumerate(rows):
        if len(logps) != len(completion):
            raise ValueError(f"row {i}: {len(completion)} tokens but {len(logps)} logprobs")
        loss_mask = rest[0] if rest and len(rest[0]) else [1] * len(completion)
        if len(loss_mask) != len(completion):
            raise ValueError(f"row {i}: {len(completion)} tokens but a loss mask of {len(loss_mask)}")
        seq = prompt + completion
        ids[i, :len(seq)] = torch.tensor(seq)
        attn[i, :len(seq)] = 1
        start = len(prompt) - 1  # logits at position t predict token t + 1
        mask[i, start:start + len(completion)] = torch.tensor(loss_mask, dtype=mask.dtype)
        old[i, start:start + len(completion)] = torch.tensor(logps)
    return TokenBatch(ids, attn, ids[:, 1:], mask, old)


def token_logprobs(model, batch: TokenBatch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the targets and the entropy at each position, at `temperature`."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    logp_all = torch.log_softmax(logits / temperature, dim=-1)
    logp = logp_all.gather(-1, batch.targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
