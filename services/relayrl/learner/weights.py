"""Versioned weights: the learner publishes each version once, actors pull it in chunks.

Publishing serializes the state dict once per version as a safetensors payload in the wire dtype
(bf16 by default, fp32 where bit-exactness matters); the payload is cached for the last few
versions and streamed in fixed-size chunks by any number of readers, so N actors cost N reads of
one buffer, not N serializations. `WeightSource` is the boundary an actor pulls through: in-process
(from the store directly) or over gRPC (`LearnerService.GetWeights`). Tied embeddings travel once
(`lm_head.weight` is dropped when it aliases the input embeddings).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Published:
    version: int
    payload: bytes
    wire_dtype: str


def serialize(state_dict: dict, wire_dtype: str) -> bytes:
    """A safetensors payload of `state_dict` cast to `wire_dtype` (floating tensors only)."""
    import torch
    from safetensors.torch import save

    dtype = getattr(torch, wire_dtype)
    seen: dict[int, str] = {}
    tensors = {}
    for name, t in state_dict.items():
        ptr = t.data_ptr()
        if ptr in seen:  # an alias (tied weights) travels once
            continue
        seen[ptr] = name
        t = t.detach()
        tensors[name] = (t.to(dtype) if t.is_floating_point() else t).contiguous().cpu()
    return save(tensors)


def deserialize(payload: bytes) -> dict:
    from safetensors.torch import load

    return load(payload)


class WeightStore:
    """The last `keep` published versions, thread-safe."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._versions: OrderedDict[int, Published] = OrderedDict()
        self._lock = threading.Lock()

    def publish(self, version: int, state_dict: dict, wire_dtype: str) -> Published:
        if wire_dtype not in DTYPES:
            raise ValueError(f"wire_dtype must be one of {DTYPES}, not {wire_dtype!r}")
        item = Published(version, serialize(state_dict, wire_dtype), wire_dtype)
        with self._lock:
            self._versions[version] = item
            while len(self._versions) > self._keep:
                self._versions.popitem(last=False)
        return item

    def get(self, version: int = -1) -> Published | None:
        """A version, or the newest with -1; None when absent (never published or evicted)."""
        with self._lock:
            if not self._versions:
                return None
            if version < 0:
                return next(reversed(self._versions.values()))
            return self._versions.get(version)

    def chunks(self, item: Published, chunk_bytes: int):
        view = memoryview(item.payload)
        for offset in range(0, len(view), chunk_bytes):
            yield offset, bytes(view[offset:offset + chunk_bytes])


class WeightSource(ABC):
    """Where an actor gets weights from."""

    @abstractmethod
    def latest_version(self) -> int:
        """The newest published version, -1 when none is."""

    @abstractmethod
    def fetch(self, version: int = -1) -> tuple[int, dict]:
        """(version, state dict in the wire dtype); -1 asks for the newest."""


class InProcessWeightSource(WeightSource):
    def __init__(self, store: WeightStore) -> None:
        self.store = store

    def latest_version(self) -> int:
        item = self.store.get()
        return -1 if item is None else item.version

    def fetch(self, version: int = -1) -> tuple[int, dict]:
        item = self.store.get(version)
        if item is None:
            raise LookupError(f"version {version} is not available")
        return item.version, deserialize(item.payload)


class GrpcWeightSource(WeightSource):
    """Pulls from a learner's `LearnerService` over gRPC."""

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

    def fetch(self, version: int = -1) -> tuple[int, dict]:
        from relayrl.wire import learner_pb2

        buf = bytearray()
        got = None
        for chunk in self._stub.GetWeights(learner_pb2.GetWeightsRequest(version=version), timeout=self._timeout):
            if chunk.offset != len(buf):
                raise OSError(f"weight chunk at offset {chunk.offset}, expected {len(buf)}")
            got = chunk.version
            total = chunk.total_bytes
            buf += chunk.data
        if got is None or len(buf) != total:
            raise OSError(f"incomplete weights: {len(buf)} bytes received")
        self.bytes_received += len(buf)
        return got, deserialize(bytes(buf))

    def close(self) -> None:
        self._channel.close()
