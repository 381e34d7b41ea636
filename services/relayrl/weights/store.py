"""Published weight versions: serialised once per version, kept for the last few, read in chunks.

Publishing serializes the state dict once per version as a safetensors payload in the wire dtype
(bf16 by default, fp32 where bit-exactness matters); the payload is kept for the last `keep`
versions and streamed in fixed-size chunks by any number of readers, so N actors cost N reads of
one buffer, not N serializations. A relay stores payloads it received already serialized (`put`),
so the learner and a relay serve from the same store. Tied embeddings travel once
(`lm_head.weight` is dropped when it aliases the input embeddings).

A store holds the versions of one learner *epoch* (a new one each time a learner starts, so a
resumed learner's version 100 is not the dead lineage's version 100): putting a version of
another epoch drops every version held, so a relay never serves a dead lineage's weights.

The payload is written in place from a list of entries whose tensors are fetched one at a time
(`serialize_entries`): the learner under FSDP gathers each parameter only as its slot is filled.
torch is imported only by the (de)serializers.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Published:
    """One version's payload: safetensors bytes in `wire_dtype` ("" when a relay did not learn it)."""

    version: int
    payload: bytes | bytearray
    wire_dtype: str
    epoch: str = ""
    """The learner epoch (lineage) the version belongs to; "" when unknown."""


_SAFETENSORS_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "float64": "F64", "int64": "I64",
                      "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def serialize_entries(entries, wire_dtype: str) -> bytearray:
    """A safetensors payload built in place: `entries` are (name, shape, dtype, get) and `get()`
    returns the tensor (floating tensors are cast to `wire_dtype`). The header is written from the
    shapes first, then each tensor is fetched and copied into its slot, one at a time, so a caller
    that gathers sharded tensors (`get` all-gathers under FSDP) holds one full tensor beyond the
    payload at any moment."""
    import torch

    wire = getattr(torch, wire_dtype)
    header: dict = {}
    cast = [(wire if dtype.is_floating_point else dtype, name, shape, get) for name, shape, dtype, get in entries]
    # the widest dtypes first in the payload (as safetensors writes), so every tensor starts aligned
    # to its element size; the tensors are still fetched in the entries' order (under FSDP every
    # rank gathers them in that order)
    at: dict[str, int] = {}
    offset = 0
    for out, name, shape, _ in sorted(cast, key=lambda e: -e[0].itemsize):
        nbytes = math.prod(shape) * out.itemsize
        header[name] = {"dtype": _SAFETENSORS_DTYPES[str(out).removeprefix("torch.")], "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        at[name] = offset
        offset += nbytes
    slots = [(get, out, at[name], math.prod(shape) * out.itemsize) for out, name, shape, get in cast]
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    start = 8 + len(raw)
    buf = bytearray(start + offset)
    buf[:start] = struct.pack("<Q", len(raw)) + raw
    view = torch.frombuffer(buf, dtype=torch.uint8)
    for get, out, begin, nbytes in slots:
        tensor = get().detach().to(out).cpu().contiguous()  # called for every entry: it may be a collective
        if nbytes:
            view[start + begin:start + begin + nbytes].copy_(tensor.reshape(-1).view(torch.uint8))
    return buf


def layout(payload) -> list:
    """(name, tensor) of every tensor of a safetensors payload, in the payload's order, each a view
    of the payload's bytes (no copy; a `bytes` payload gives read-only views)."""
    import warnings

    import torch

    (size,) = struct.unpack("<Q", bytes(payload[:8]))
    header = json.loads(bytes(payload[8:8 + size]))
    header.pop("__metadata__", None)
    by_code = {code: getattr(torch, name) for name, code in _SAFETENSORS_DTYPES.items()}
    out = []
    with warnings.catch_warnings():  # torch warns that a bytes buffer is not writable: these views are read
        warnings.simplefilter("ignore", UserWarning)
        for name, meta in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            begin, end = meta["data_offsets"]
            dtype = by_code[meta["dtype"]]
            raw = (torch.frombuffer(payload, dtype=torch.uint8, offset=8 + size + begin, count=end - begin)
                   if end > begin else torch.empty(0, dtype=torch.uint8))
            out.append((name, raw.view(dtype).reshape(meta["shape"])))
    return out


def _entries(state_dict: dict) -> list:
    """`serialize_entries` entries of a state dict; an alias (tied weights) travels once, under
    its first name."""
    seen: set[int] = set()
    out = []
    for name, t in state_dict.items():
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            out.append((name, tuple(t.shape), t.dtype, lambda t=t: t))
    return out


def serialize(state_dict: dict, wire_dtype: str) -> bytearray:
    """A safetensors payload of `state_dict` cast to `wire_dtype` (floating tensors only)."""
    return serialize_entries(_entries(state_dict), wire_dtype)


def deserialize(payload) -> dict:
    """The state dict of a safetensors payload (tensors in the wire dtype)."""
    from safetensors.torch import load

    return load(payload if isinstance(payload, bytes) else bytes(payload))


class WeightStore:
    """The last `keep` published versions of one learner epoch, thread-safe."""

    def __init__(self, keep: int = 2, epoch: str = "") -> None:
        self._keep = keep
        self.epoch = epoch
        self._versions: OrderedDict[int, Published] = OrderedDict()
        self._lock = threading.Lock()

    def publish(self, version: int, state_dict: dict, wire_dtype: str) -> Published:
        """Serialize `state_dict` as `version` and keep it (the learner's side)."""
        return self.publish_entries(version, _entries(state_dict), wire_dtype)

    def publish_entries(self, version: int, entries, wire_dtype: str) -> Published:
        """Serialize `entries` ((name, shape, dtype, get), `serialize_entries`) as `version` and keep it."""
        if wire_dtype not in DTYPES:
            raise ValueError(f"wire_dtype must be one of {DTYPES}, not {wire_dtype!r}")
        item = Published(version, serialize_entries(entries, wire_dtype), wire_dtype, self.epoch)
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
