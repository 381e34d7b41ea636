"""Weight versions from the learner to the actors: publishing, serving, pulling and relaying.

The learner and the rollout side meet here (and on the wire and in Redis), never in each other's
packages. One module per part:

    store    the published-version type, (de)serialisation, the store of the last few versions
    service  the gRPC `LearnerService` weight methods over a store (the learner's and a relay's)
    source   `WeightSource`, the boundary an actor pulls through: in-process or gRPC
             (`make_weight_source` below picks gRPC or bulk from an address)
    bulk     a relay's raw-TCP fast path (`bulk://host:port`) and the source that reads it
    relay    a per-node relay: one pull per version from upstream, re-served to the node's actors
    nccl     the GPU fast path (`nccl://host:port`): a broadcast per actor over a pair process group
    lora     LoRA adapters on the wire and merged into an engine's weights on load

The two errors below are how the weight path says "come back later": both are `TransientError`s,
so the one retry policy (`relayrl.retry.is_transient`) retries them; they also keep the builtin
bases the callers of the first implementation caught.
"""

from __future__ import annotations

from relayrl.retry import TransientError


class VersionUnavailable(TransientError, LookupError):
    """The version asked for is not held: none published yet, or evicted before it was pulled."""


class IncompleteWeights(TransientError, OSError):
    """A weight transfer ended short or out of order (the peer went away mid-stream)."""


def make_weight_source(address: str):
    """The `WeightSource` an address names: `bulk://host:port` a relay's bulk port, `nccl://host:port`
    the learner's broadcast server, `host:port` gRPC (a learner or a relay). Here rather than in
    `source`, which `bulk` and `nccl` build on."""
    if address.startswith("nccl://"):
        from relayrl.weights.nccl import NcclWeightSource

        return NcclWeightSource(address)
    if address.startswith("bulk://"):
        from relayrl.weights.bulk import BulkWeightSource

        return BulkWeightSource(address)
    from relayrl.weights.source import GrpcWeightSource

    return GrpcWeightSource(address)
