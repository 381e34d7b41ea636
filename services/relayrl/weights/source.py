"""`WeightSource`: the boundary an actor pulls weight versions through.

Three implementations answer the same two questions (the newest version; a version's state dict,
with the learner epoch it belongs to):
in-process (from a `WeightStore` directly: unit tests, one-process runs), over gRPC
(`LearnerService.GetWeights` on a learner or a relay) and over a relay's bulk port (bulk.py).
`make_weight_source(address)` picks one from an actor's `--learner` address. A version that is
not held raises `VersionUnavailable` (in-process and bulk) or a gRPC status (UNAVAILABLE when
nothing is published yet, NOT_FOUND for an evicted version); a transfer that ends short raises
`IncompleteWeights`. grpc is imported only by the gRPC source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

from relayrl.weights import VersionUnavailable
from relayrl.weights.store import WeightStore, deserialize


class Fetched(NamedTuple):
    """A version as an actor receives it."""

    version: int
    state: dict
    """The state dict, tensors in the wire dtype."""
    epoch: str
    """The learner epoch (lineage) of the version; "" from a server that predates epochs."""


class WeightSource(ABC):
    """Where an actor gets weights from."""

    @abstractmethod
    def latest_version(self) -> int:
        """The newest published version, -1 when none is."""

    @abstractmethod
    def fetch(self, version: int = -1) -> Fetched:
        """A version's weights; -1 asks for the newest."""


class InProcessWeightSource(WeightSource):
    """Reads a `WeightStore` in this process."""

    def __init__(self, store: WeightStore) -> None:
        self.store = store

    def latest_version(self) -> int:
        return self.store.newest_version()

    def fetch(self, version: int = -1) -> Fetched:
        item = self.store.get(version)
        if item is None:
            raise VersionUnavailable(f"version {version} is not available")
        return Fetched(item.version, deserialize(item.payload), item.epoch)


class GrpcWeightSource(WeightSource):
    """Pulls from a `LearnerService` (a learner or a relay) over gRPC."""

    def __init__(self, address: str, timeout_s: float = 120.0) -> None:
        from relayrl.rpc import channel
        from relayrl.wire import learner_pb2_grpc

        self._channel = channel(address)
        self._stub = learner_pb2_grpc.LearnerServiceStub(self._channel)
        self._timeout = timeout_s
        self.bytes_received = 0

    def latest_version(self) -> int:
        from relayrl.wire import learner_pb2

        return self._stub.GetLatestVersion(learner_pb2.GetLatestVersionRequest(), timeout=self._timeout).version

    def fetch(self, version: int = -1) -> Fetched:
        from relayrl.weights.service import reassemble
        from relayrl.wire import learner_pb2

        item = reassemble(self._stub.GetWeights(learner_pb2.GetWeightsRequest(version=version), timeout=self._timeout))
        self.bytes_received += len(item.payload)
        return Fetched(item.version, deserialize(item.payload), item.epoch)

    def close(self) -> None:
        self._channel.close()
