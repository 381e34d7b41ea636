"""One learner step's statistics, right for the whole batch also when the batch is split.

A step is computed in shards: the minibatches of one process, their micro-batches and, under FSDP,
each rank's slice of every minibatch. Averaging each shard's figures would weight a short shard
like a long one, and logging rank 0's figures would describe half the batch. So every figure is
kept in the form that adds up: token means (entropy, clip fractions, ratio, KL, IS weights) as sum
and token count, the effective sample size as its pooled sums, maxima as maxima, the loss as the
sum of the shards' shares; the gradient norm, which FSDP makes the same on every rank, is averaged
over minibatches only. Under torch.distributed one all-reduce of the sums and one of the maxima
give every rank the whole batch's figures, which rank 0 logs: what a single process would have
logged.
"""

from __future__ import annotations


class StepStats:
    """Accumulates one step's shards; `result` reduces across ranks and finishes the figures."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._maxes: dict[str, float] = {}
        self._replicated: dict[str, float] = {}
        self._minibatches = 0

    def _add(self, name: str, value: float) -> None:
        self._sums[name] = self._sums.get(name, 0.0) + value

    def add_shard(self, means: dict[str, float], tokens: float, loss_share: float, offpolicy: dict[str, float]) -> None:
        """One micro-batch of a minibatch on this rank: token `means` over its `tokens` completion
        tokens, its share of the minibatch loss, its off-policy sums (`algorithms.offpolicy_sums`)."""
        for name, value in means.items():  # the same names in every shard: the spec decides them
            self._add(f"mean:{name}", value * tokens)
        self._add("tokens", tokens)
        self._add("loss", loss_share)
        for name in ("sum_w", "sum_w2", "sum_kl", "sum_k1", "n"):
            self._add(f"offpolicy:{name}", offpolicy[name])
        self._maxes["is_weight_max"] = max(self._maxes.get("is_weight_max", 0.0), offpolicy["max_w"])

    def end_minibatch(self, replicated: dict[str, float]) -> None:
        """A minibatch's optimizer step is done; `replicated`: its figures every rank shares (grad norm)."""
        self._minibatches += 1
        for name, value in replicated.items():
            self._replicated[name] = self._replicated.get(name, 0.0) + value

    def _all_reduce(self, world: int) -> None:
        if world <= 1:
            return
        import torch
        import torch.distributed as dist

        names = sorted(self._sums)  # the same names on every rank: the same code ran on the same spec
        sums = torch.tensor([self._sums[n] for n in names], dtype=torch.float64)
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        self._sums = dict(zip(names, sums.tolist()))
        names = sorted(self._maxes)
        maxes = torch.tensor([self._maxes[n] for n in names], dtype=torch.float64)
        dist.all_reduce(maxes, op=dist.ReduceOp.MAX)
        self._maxes = dict(zip(names, maxes.tolist()))

    def result(self, world: int = 1) -> dict[str, float]:
        """The step's figures over the whole batch (all ranks); collective when world > 1."""
        self._all_reduce(world)
        out: dict[str, float] = {}
        tokens = max(self._sums.get("tokens", 0.0), 1e-300)
        for key, total in self._sums.items():
            if key.startswith("mean:"):
                out[key.removeprefix("mean:")] = total / tokens
        m = max(self._minibatches, 1)
        out["loss"] = self._sums.get("loss", 0.0) / m
        n = max(self._sums.get("offpolicy:n", 0.0), 1.0)
        w, w2 = self._sums.get("offpolicy:sum_w", 0.0), self._sums.get("offpolicy:sum_w2", 0.0)
        out["mismatch_kl"] = self._sums.get("offpolicy:sum_kl", 0.0) / n
        out["mismatch_kl_k1"] = self._sums.get("offpolicy:sum_k1", 0.0) / n
        out["ess"] = w * w / max(n * w2, 1e-300)
        out.update(self._maxes)
        out.update({name: value / m for name, value in self._replicated.items()})
        return out
