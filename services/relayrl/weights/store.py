"""Published weight versions: serialised once per version, kept for the last few, read in chunks.

Publishing serializes the state dict once per version as a safetensors payload in the wire dtype
(bf16 by default, fp32 where bit-exactness matters); the payload is kept for the last `keep`
versions and streamed in fixed-size chunks by any number of readers, so N actors cost N reads of
one buffer, not N serializations. A relay stores payloads it received already serialized (`put`),
so the learner and a relay serve from the same store. Tied embeddings travel once
(`lm_head.weight` is dropped when it aliases the input embeddings). torch is imported only by
`serialize` and `deserialize`.

A store holds the versions of one learner *epoch* (a new one each time a learner starts, so a
resumed learner's version 100 is not the dead lineage's version 100): putting a version of
another epoch drops every version held, so a relay never serves a dead lineage's weights.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Published:
    """One version's payload: safetensors bytes in `wire_dtype` ("" when a relay did not learn it)."""

    version: int
    payload: bytes
    wire_dtype: str
    epoch: str = ""
    """The learner epoch (lineage) the version belongs to; "" when unknown."""


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
    """The state dict of a safetensors payload (tensors in the wire dtype)."""
    from safetensors.torch import load

    return load(payload)


class WeightStore:
    """The last `keep` published versions of one learner epoch, thread-safe."""

    def __init__(self, keep: int = 2, epoch: str = "") -> None:
        self._keep = keep
        self.epoch = epoch
        self._versions: OrderedDict[int, Published] = OrderedDict()
        self._lock = threading.Lock()

    def publish(self, version: int, state_dict: dict, wire_dtype: str) -> Published:
        """Serialize `state_dict` as `version` and keep it (the learner's side)."""
        if wire_dtype not in DTYPES:
            raise ValueError(f"wire_dtype must be one of {DTYPES}, not {wire_dtype!r}")
        item = Published(version, serialize(state_dict, wire_dtype), wire_dtype, self.epoch)
        self.put(item)
        return item

    def put(self, item: Published) -> None:
        """Keep a payload that is already serialized (a relay's side), evicting the oldest; one of
        another epoch (the learner restarted) replaces everything held."""
        with self._lock:
            if item.epoch != self.epoch:
                self._versions.clear()
                self.epoch = item.epoch
            self._versions[item.version] = item
            while len(self._versions) > self._keep:
                self._versions.popitem(last=False)

    def get(self, version: int = -1) -> Published | None:
        """A version, or the newest with -1; None when absent (never published or evicted)."""
        with self._lock:
            if not self._versions:
                return None
            if version < 0:
                return next(reversed(self._versions.values()))
            return self._versions.get(version)

    def newest_version(self) -> int:
        """The newest version held, -1 when none is."""
        item = self.get()
        return -1 if item is None else item.version

    def chunks(self, item: Published, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) pieces of `item`'s payload, `chunk_bytes` each (the last one shorter)."""
        view = memoryview(item.payload)
        for offset in range(0, len(view), chunk_bytes):
            yield offset, bytes(view[offset:offset + chunk_bytes])
