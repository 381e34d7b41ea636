"""The learner across ranks: FSDP2 (`torch.distributed.fsdp.fully_shard`) under torchrun; NCCL
on GPUs, gloo on CPUs.

Each rank holds a shard of every parameter, gradient and optimizer state (FSDP2 shards dim 0 of
each parameter over a one-dimensional mesh), so a model that does not fit one device trains on
several. Rank 0 is the learner the rest of the system sees: it leases groups, admits prompts,
publishes weights, checkpoints and acknowledges. The other ranks `follow` it: rank 0 broadcasts
one command at a time —

    ("step", rows)      train on the batch (prepared rows: token ids, logprobs, advantages)
    ("publish",)        join the gather of the weights rank 0 publishes
    ("save", path)      write this rank's shard of a checkpoint and join its gathers
    None                training is over

— and every rank runs the same code on it, so the collectives inside (FSDP's all-gathers and
reduce-scatters, the statistics' all-reduce, `full_tensor()` gathers, torch.distributed.checkpoint)
line up. In a step each rank trains its contiguous shard of every minibatch through
`update.update`, whose loss normalisation makes FSDP's averaged gradient equal the one-process
gradient of the whole minibatch (`tests/integration/test_distributed.py`), and whose micro-batch
plan pads every rank to the same number of forward passes.

Publishing gathers one parameter at a time (`full`, a collective on every rank) into the wire
payload on rank 0, so no rank ever holds more than one full parameter beyond its shard, and rank 0
one full copy: the payload. DDP, which this replaced, kept a full replica of the weights and the
optimizer on every rank; FSDP2 with the same loss normalisation makes the same update (the
equivalence test) and scales past one device's memory, so one distributed mode is kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict

import torch

from relayrl.learner.update import Rows, Updater

log = logging.getLogger("relayrl.learner")


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT), over NCCL
    when the learner trains on CUDA, gloo on the CPU; without torchrun a group of one (on a free
    loopback port). (rank, world)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend)
        else:
            from relayrl.replay.private_redis import free_port

            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    return dist.get_rank(), dist.get_world_size()


def shard(model, device: torch.device, param_dtype: torch.dtype | None, reshard_after_forward: bool = True) -> None:
    """FSDP2 in place: every decoder layer (the model's `_no_split_modules` classes), then the root,
    `fully_shard`ed over all ranks on `device`; with `param_dtype` (bf16 mixed precision) the
    parameters are gathered in it and the gradients reduced in float32. Parameters are moved to
    the mesh's device shard by shard (the full model never lands on the device)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    layers = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in layers:
            fully_shard(module, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward)


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor: a DTensor shard is all-gathered (a collective: every rank must call it in
    the same order); a plain tensor is itself."""
    gather = getattr(tensor, "full_tensor", None)
    return gather() if callable(gather) else tensor


def entries(model) -> list[tuple[str, tuple[int, ...], torch.dtype, Callable[[], torch.Tensor]]]:
    """(name, shape, dtype, get) of every tensor a full version holds: the parameters (a tied weight
    once, under its first name) and the persistent buffers; `get()` gathers one (`full`)."""
    names = set(model.state_dict().keys())
    out = [(n, tuple(p.shape), p.dtype, lambda p=p: full(p.detach())) for n, p in model.named_parameters()]
    out += [(n, tuple(b.shape), b.dtype, lambda b=b: full(b)) for n, b in model.named_buffers() if n in names]
    return out


class DistributedUpdater(Updater):
    """`update` across the process group; rank 0 calls `step` and `collective`, the others `follow`."""

    def __init__(self, *args, **kwargs) -> None:
        """`Updater`'s arguments, the model sharded (`shard`); the process group is joined."""
        import torch.distributed as dist

        super().__init__(*args, **kwargs)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @staticmethod
    def _broadcast(command):
        """Rank 0's `command` on every rank (the argument matters on rank 0 only)."""
        import torch.distributed as dist

        box = [command]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def step(self, rows: Rows) -> dict:
        """Rank 0: hand `rows` to every rank and train on them together."""
        self._broadcast(("step", asdict(rows)))
        return self._update(rows)

    def collective(self, name: str, *args) -> None:
        self._broadcast((name, args))

    def finish(self) -> None:
        """Rank 0: release the followers."""
        self._broadcast(None)

    def follow(self) -> int:
        """Ranks > 0: run each command rank 0 broadcasts until it finishes; return the steps trained."""
        steps = 0
        while (command := self._broadcast(None)) is not None:
            name, payload = command
            if name == "step":
                self._update(Rows(**payload))
                steps += 1
            else:
                self.handlers[name](*payload)
        return steps
