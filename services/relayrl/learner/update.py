"""One learner update: scored groups -> rows with advantages -> proximal logprobs -> optimizer steps.

Shared by the single-process learner and the distributed one: with `world > 1` each rank holds
the whole batch, trains on its contiguous shard of every minibatch, and normalises its loss by
the minibatch's totals times the world size, so that FSDP's gradient average equals the gradient
of the whole minibatch in one process (the equivalence test checks it). Micro-batches are cut by
rows and by padded tokens (`tokens.micro_batches`); the proximal and reference forwards run in
eval mode (no dropout). `Updater` is the one
interface the policy trains through: `LocalUpdater` here, `distributed.DistributedUpdater` across
a torch.distributed group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from relayrl.learner.algorithms import advantages, masked_mean, offpolicy_sums, policy_loss
from relayrl.learner.reference import Reference
from relayrl.learner.spec import AlgoSpec, model_tokens, shaped_rewards
from relayrl.learner.stats import StepStats
from relayrl.learner.tokens import TokenBatch, build_batch, eval_mode, has_dropout, micro_batches, token_logprobs
from relayrl.wire import common_pb2


@dataclass
class Rows:
    """The trainable rows of a batch of groups."""

    rows: list[tuple[list[int], list[int], list[float], list[int]]] = field(default_factory=list)
    """(prompt ids, completion ids, behaviour logprobs, loss mask: empty for a single completion)."""
    advantages: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    shaped: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=dict)
    """Each reward component ("accuracy", "format", ...) of the rows that report it, unweighted."""


def prepare(groups: list[common_pb2.Group], spec: AlgoSpec) -> Rows:
    out = Rows()
    for g in groups:
        keep, raw, shaped = shaped_rewards(g, spec)
        out.advantages += advantages(torch.tensor(shaped), spec.name, spec.adv_eps).tolist()
        out.rewards += raw
        out.shaped += shaped
        for i in keep:
            for name, value in g.scores[i].components.items():
                out.components.setdefault(name, []).append(value)
            s = g.samples[i]
            out.rows.append((list(s.prompt_token_ids), list(s.completion_token_ids), list(s.logprobs),
                             list(s.loss_mask)))
            out.lengths.append(model_tokens(s))  # the tokens the loss is over (an episode's observations excluded)
    return out


@dataclass
class Minibatch:
    """One optimizer step's rows on this rank, in micro-batches, with the minibatch's totals over
    every rank (what each micro-batch's loss is normalised by)."""

    micro: list[tuple[TokenBatch, torch.Tensor]]
    """(token batch, one advantage per row) for each micro-batch of this rank's shard."""
    rows: int
    """Rows of the whole minibatch (every rank's shard)."""
    tokens: float
    """Completion tokens of the whole minibatch."""
    padding: int = 0
    """Trailing micro-batches that only keep this rank in step with a rank that has more (their
    loss is multiplied by 0): under FSDP every forward and backward is a collective."""


def _slices(n: int, parts: int) -> list[slice]:
    """`parts` contiguous slices covering range(n), sizes differing by at most one."""
    bounds = [round(k * n / parts) for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def plan(rows: Rows, pad_id: int, minibatches: int = 1, rank: int = 0, world: int = 1,
         micro_batch_rows: int | None = None, micro_batch_tokens: int | None = None) -> list[Minibatch]:
    """This rank's micro-batches of each minibatch: its contiguous shard of the minibatch's rows,
    cut by `tokens.micro_batches`, padded to the largest number of micro-batches any rank has."""
    mbs = [s for s in _slices(len(rows.rows), min(minibatches, len(rows.rows))) if s.stop > s.start]
    if world > 1 and any(mb.stop - mb.start < world for mb in mbs):
        raise ValueError(f"every minibatch needs at least {world} rows to shard across {world} ranks")
    out: list[Minibatch] = []
    for mb in mbs:
        cuts = []
        for r in range(world):  # every rank holds every row: it knows how many micro-batches the others run
            shard = _slices(mb.stop - mb.start, world)[r]
            lo = mb.start + shard.start
            lengths = [len(p) + len(c) for p, c, *_ in rows.rows[lo:mb.start + shard.stop]]
            cuts.append([[lo + i for i in part] for part in micro_batches(lengths, micro_batch_tokens, micro_batch_rows)])
        mine = cuts[rank]
        micro = [(build_batch([rows.rows[i] for i in part], pad_id),
                  torch.tensor([rows.advantages[i] for i in part], dtype=torch.float32)) for part in mine]
        padding = max(map(len, cuts)) - len(mine)
        if padding:  # the cheapest forward that joins the collectives: this rank's shortest row alone
            shortest = min((i for part in mine for i in part), key=lambda i: len(rows.rows[i][0]) + len(rows.rows[i][1]))
            micro += [(build_batch([rows.rows[shortest]], pad_id), torch.zeros(1))] * padding
        out.append(Minibatch(micro, mb.stop - mb.start, float(sum(rows.lengths[mb])), padding))
    return out


def update(model, optimizer, scheduler, rows: Rows, spec: AlgoSpec, temperature: float, pad_id: int,
           grad_clip: float, minibatches: int = 1, ref_model=None, rank: int = 0, world: int = 1,
           micro_batch_rows: int | None = None, *, micro_batch_tokens: int | None = None, top_k: int = 0,
           top_p: float = 1.0, autocast_dtype: torch.dtype | None = None) -> dict:
    """Train on `rows`: `minibatches` optimizer steps; return the step's statistics (the whole batch).

    Each minibatch's rows (this rank's shard of them) go through forward and backward in
    micro-batches of at most `micro_batch_rows` rows and `micro_batch_tokens` padded tokens,
    gradients accumulating until the optimizer step; every micro-batch's loss is normalised by the
    whole minibatch's rows and tokens, so the step is the same whatever the cut (only the peak
    memory changes). Logprobs are scored under the engine's sampling distribution (`temperature`,
    `top_k`, `top_p`). `ref_model`: a `Reference`, or a module scored as one. With `world` > 1
    `model` is sharded with FSDP2 (`distributed`), whose gradient reduce-scatter averages over the
    ranks."""
    device = next(model.parameters()).device
    steps = plan(rows, pad_id, minibatches, rank, world, micro_batch_rows, micro_batch_tokens)
    score = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    ref = Reference.of(ref_model) if spec.kl_beta > 0 else None
    # the proximal policy is this learner before the batch's first update: with one minibatch and
    # no dropout that is the policy being differentiated (its detached logprobs); otherwise one
    # extra forward pass in eval mode
    prox: list = [[None] * len(step.micro) for step in steps]
    if len(steps) > 1 or has_dropout(model):
        with torch.no_grad(), eval_mode(model):
            prox = [[token_logprobs(model, batch.to(device), **score, autocast_dtype=autocast_dtype)[0]
                     for batch, _ in step.micro] for step in steps]
    acc = StepStats()
    for k, step in enumerate(steps):
        optimizer.zero_grad(set_to_none=True)
        for j, (batch, adv) in enumerate(step.micro):
            batch, adv = batch.to(device), adv.to(device)
            logp, entropy = token_logprobs(model, batch, **score, autocast_dtype=autocast_dtype)
            ref_logp = ref.logprobs(batch, **score) if ref is not None else None
            if prox[k][j] is None:
                prox[k][j] = logp.detach()
            p = prox[k][j] if spec.objective == "decoupled" else None
            loss, s = policy_loss(logp, batch.behaviour_logprobs, adv, batch.loss_mask, spec, prox_logp=p,
                                  ref_logp=ref_logp, num_rows=step.rows, num_tokens=step.tokens)
            padding = j >= len(step.micro) - step.padding
            # FSDP averages the gradients over the ranks: each rank's loss is its share of the sum
            (loss * (0.0 if padding else world)).backward()
            if padding:
                continue
            s["entropy"] = float(masked_mean(entropy.detach(), batch.loss_mask))
            acc.add_shard(s, float(batch.loss_mask.sum()), float(loss.detach()),
                          offpolicy_sums(prox[k][j], batch.behaviour_logprobs, batch.loss_mask))
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        full = getattr(grad_norm, "full_tensor", None)  # a DTensor under FSDP
        acc.end_minibatch({"grad_norm": float(full() if full else grad_norm)})
    stats = acc.result(world)  # the whole batch's figures on every rank (all-reduced under FSDP)
    lengths = torch.tensor(rows.lengths, dtype=torch.float32)
    stats.update(reward_mean=sum(rows.rewards) / len(rows.rewards), tokens=int(sum(rows.lengths)),
                 response_length_mean=float(lengths.mean()), response_length_max=int(lengths.max()),
                 response_length_min=int(lengths.min()),
                 response_clip_frac=float((lengths >= spec.max_len).float().mean()) if spec.max_len else 0.0,
                 adv_abs_mean=float(torch.tensor(rows.advantages).abs().mean()),
                 lr=float(optimizer.param_groups[0]["lr"]))
    for name, values in rows.components.items():  # e.g. format compliance and accuracy apart
        stats[f"reward_{name}_mean"] = sum(values) / len(values)
    if spec.overlong_buffer:
        stats["shaped_reward_mean"] = sum(rows.shaped) / len(rows.shaped)
    return stats


class Updater(ABC):
    """Applies `update` to a batch's rows with fixed settings; `rank` 0 is the learner the rest of
    the system sees (it alone leases, publishes and checkpoints). Work every rank must join (the
    gathers of publishing and checkpointing) is registered by name with `on` and started on rank 0
    by `collective`, which in one process does nothing."""

    rank = 0
    world = 1

    def __init__(self, model, optimizer, scheduler, spec: AlgoSpec, temperature: float, pad_id: int,
                 grad_clip: float, minibatches: int = 1, ref_model=None, micro_batch_rows: int | None = None,
                 **options) -> None:
        """`options`: `update`'s keyword-only settings (micro_batch_tokens, top_k, top_p, autocast_dtype)."""
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.args = dict(spec=spec, temperature=temperature, pad_id=pad_id, grad_clip=grad_clip,
                         minibatches=minibatches, ref_model=ref_model, micro_batch_rows=micro_batch_rows, **options)
        self.handlers: dict[str, Callable] = {}
        self.last_stats: dict = {}

    def _update(self, rows: Rows) -> dict:
        self.last_stats = update(self.model, self.optimizer, self.scheduler, rows, rank=self.rank, world=self.world,
                                 **self.args)
        return self.last_stats

    def on(self, name: str, handler: Callable) -> None:
        """What the other ranks run when rank 0 starts the collective `name`."""
        self.handlers[name] = handler

    @abstractmethod
    def step(self, rows: Rows) -> dict:
        """Train on `rows` (one batch); the batch's statistics."""

    def collective(self, name: str, *args) -> None:
        """Rank 0: have every other rank run the handler of `name` with `args`, as rank 0 runs the
        same work next (one process: nothing to do)."""

    def finish(self) -> None:
        """The last batch is trained (other ranks, if any, may stop)."""


class LocalUpdater(Updater):
    """All of it in this process."""

    def step(self, rows: Rows) -> dict:
        return self._update(rows)
