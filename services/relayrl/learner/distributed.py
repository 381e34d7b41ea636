"""Data-parallel learner updates with torch.distributed: DDP over gloo on a CPU, NCCL on GPUs.

Rank 0 is the learner the rest of the system sees: it leases groups, admits prompts, publishes
weights, checkpoints and acknowledges. For each batch it broadcasts the prepared rows (token ids,
behaviour logprobs, advantages: a few hundred KB) to the other ranks; every rank trains its
contiguous shard of each minibatch through `update.update`, whose loss normalisation makes DDP's
gradient average equal to the one-process gradient of the whole minibatch. Gradients are
all-reduced by DDP, so every rank applies the same AdamW step and the replicas stay identical;
only rank 0 serializes and publishes them. The step's statistics are all-reduced too
(`stats.StepStats`), so what rank 0 logs describes the whole batch, not its own shard. The other
ranks run `follow` until rank 0 broadcasts the end.

Not covered: sharded parameters (FSDP) for models that do not fit one device; the ranks here hold
full replicas.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict

from relayrl.learner.update import Rows, Updater

log = logging.getLogger("relayrl.learner")


def init_from_env(backend: str = "gloo") -> tuple[int, int]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT); (rank, world)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def wrap(model):
    """The model under DistributedDataParallel (CPU: no device ids)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def broadcast_rows(rows: Rows | None) -> Rows | None:
    """Rank 0's rows on every rank; None (rank 0 is done) ends the followers."""
    import torch.distributed as dist

    box = [asdict(rows) if rows is not None else None]
    dist.broadcast_object_list(box, src=0)
    return Rows(**box[0]) if box[0] is not None else None


class DistributedUpdater(Updater):
    """`update` across the process group; rank 0 calls `step`, the others `follow`."""

    def __init__(self, *args, **kwargs) -> None:
        """`Updater`'s arguments, the model under DDP (`wrap`); the process group is joined."""
        import torch.distributed as dist

        super().__init__(*args, **kwargs)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def step(self, rows: Rows) -> dict:
        """Rank 0: hand `rows` to every rank and train on them together."""
        return self._update(broadcast_rows(rows))

    def finish(self) -> None:
        """Rank 0: release the followers."""
        broadcast_rows(None)

    def follow(self) -> int:
        """Ranks > 0: train on each batch rank 0 broadcasts until it finishes; return the steps taken."""
        steps = 0
        while (rows := broadcast_rows(None)) is not None:  # the argument matters on rank 0 only
            self._update(rows)
            steps += 1
        return steps
