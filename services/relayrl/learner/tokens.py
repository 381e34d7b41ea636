"""Token batches for the policy: prompt + completion rows as aligned tensors, their logprobs, and
how a minibatch's rows are cut into micro-batches.

The learner and the engines that are checked against it (`tests/unit/rollout/test_engine.py`, the
vLLM tests) score completions the same way: `build_batch` right-pads (prompt ids, completion ids,
behaviour logprobs) rows and marks the completion tokens, and `token_logprobs` runs the model once
over the batch and returns, at every position, the log-probability of the next token under the
distribution the engine sampled from (temperature, top-k, top-p: `relayrl.sampling`) and the
entropy there. Logits at position t predict token t + 1, so the targets, the loss mask and the
behaviour logprobs are all aligned with positions 0..L-2.

`micro_batches` cuts rows by tokens, not by count: a forward pass costs what its padded width
times its rows contain (the logits alone are rows x width x vocabulary floats), so rows are sorted
by length and packed greedily while rows x longest stays within the budget — padding-aware
bucketing, so long and short responses each cost what they contain. The loss of every micro-batch
is normalised by its minibatch's totals, so the cut changes no gradient (`update`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields

import torch

from relayrl.sampling import target_logprobs


@dataclass
class TokenBatch:
    """Prompt + completion rows, right-padded, with the completion tokens marked."""

    input_ids: torch.Tensor  # [N, L]
    attention_mask: torch.Tensor  # [N, L]
    targets: torch.Tensor  # [N, L-1]: the token predicted at each position
    loss_mask: torch.Tensor  # [N, L-1]: 1 where the target is a completion token
    behaviour_logprobs: torch.Tensor  # [N, L-1], aligned with targets

    def to(self, device) -> TokenBatch:
        """The batch on `device` (itself when it is there already)."""
        return TokenBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def padded_tokens(self) -> int:
        """Tokens the forward pass computes: rows x width."""
        return int(self.input_ids.numel())


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


def token_logprobs(model, batch: TokenBatch, temperature: float, top_k: int = 0, top_p: float = 1.0,
                   autocast_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the targets and the entropy at each position under the sampling
    distribution. With `autocast_dtype` the model's forward runs in it (mixed precision); the
    logits are cast to float32 (a float64 model keeps float64) before any logprob math."""
    device = batch.input_ids.device
    cast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
            else contextlib.nullcontext())
    with cast:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logits = logits[:, :-1]
    return target_logprobs(logits if logits.dtype == torch.float64 else logits.float(), batch.targets, temperature,
                           top_k, top_p)


def has_dropout(model) -> bool:
    """True when a train-mode forward differs from an eval-mode one (a dropout with p > 0)."""
    config = getattr(model, "config", None)
    rates = [v for k, v in (vars(config).items() if config is not None else ())
             if isinstance(v, float) and ("dropout" in k or k.endswith("pdrop"))]
    return any(r > 0 for r in rates) or any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


@contextlib.contextmanager
def eval_mode(model):
    """`model` in eval mode (no dropout) for the duration; its previous mode restored after."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def micro_batches(lengths: list[int], max_tokens: int | None = None, max_rows: int | None = None) -> list[list[int]]:
    """Indices into `lengths` (prompt + completion tokens per row), cut into micro-batches of at
    most `max_rows` rows whose padded size (rows x longest) is at most `max_tokens`.

    Without `max_tokens` the rows keep their order in consecutive runs of `max_rows`. With it,
    the rows are sorted longest first and packed greedily; a row longer than the budget on its
    own forms a micro-batch of one (it cannot be cut)."""
    order = list(range(len(lengths)))
    if max_tokens is None:
        size = max_rows or max(len(order), 1)
        return [order[a:a + size] for a in range(0, len(order), size)]
    order.sort(key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        current = out[-1] if out else None
        # sorted longest first: the current micro-batch's width is its first row's length
        if (current is not None and (max_rows is None or len(current) < max_rows)
                and (len(current) + 1) * lengths[current[0]] <= max_tokens):
            current.append(i)
        else:
            out.append([i])
    return out
