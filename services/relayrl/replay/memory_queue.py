"""In-process replay queue with the semantics of Redis Streams consumer groups.

Unit tests and single-process runs use this instead of Redis; it mirrors what
`RedisReplayQueue` does command by command, so code tested against it behaves the same on Redis:

- entry ids are `"{ms}-{seq}"`, strictly increasing, from the wall clock (as XADD makes them);
- each group has a last-delivered cursor and a pending-entries list (PEL) recording, per entry,
  the owning consumer, the time of the last delivery and the number of deliveries;
- `lease` takes over entries idle for at least `reclaim_idle_s` (XAUTOCLAIM), then reads new
  entries (XREADGROUP `>`), waiting on a condition variable when there are none and nothing was
  reclaimed;
- `pending_for` re-reads a consumer's PEL, which counts as a delivery (XREADGROUP `0`);
- `renew` resets the idle time of entries the consumer still owns (XCLAIM JUSTID);
- `ack` is idempotent and acknowledging in a missing group is not an error (XACK);
- a missing stream or group raises `LookupError` where Redis answers NOGROUP.

Idle times use an injectable `clock` (seconds, monotonic), so tests can advance time without
sleeping; `block_s` waits are real time. One lock guards everything: every method, and a `put`
with an `AckRef`, is atomic.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from relayrl.replay.base import AckRef, ConsumerInfo, Entry, GroupInfo, ReplayQueue

_Id = tuple[int, int]


def parse_id(entry_id: str) -> _Id:
    """`"ms-seq"` (or `"ms"`, meaning seq 0) as a tuple; ValueError for anything else."""
    ms, sep, seq = entry_id.partition("-")
    if not ms.isdigit() or (sep and not seq.isdigit()):
        raise ValueError(f"invalid stream entry id {entry_id!r}")
    return int(ms), int(seq) if sep else 0


@dataclass
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int


@dataclass
class _Group:
    last_id: _Id = (0, 0)
    # consumer -> when it last leased or renewed (XINFO CONSUMERS' idle time)
    seen: dict[str, float] = field(default_factory=dict)
    # Insertion order is id order: new leases only ever append larger ids, and reclaims and
    # renewals update entries in place (the order XAUTOCLAIM scans the PEL in).
    pel: dict[str, _Pending] = field(default_factory=dict)


@dataclass
class _Stream:
    ids: list[_Id] = field(default_factory=list)
    id_strs: list[str] = field(default_factory=list)
    payloads: dict[str, bytes] = field(default_factory=dict)
    groups: dict[str, _Group] = field(default_factory=dict)
    added: int = 0


class MemoryReplayQueue(ReplayQueue):
    """Streams with consumer groups in this process's memory; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._streams: dict[str, _Stream] = {}
        self._values: dict[str, str] = {}
        self._last_id: _Id = (0, 0)

    # -- helpers (call with the lock held) ------------------------------------------------

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        s = self._streams.get(stream)
        g = s.groups.get(group) if s is not None else None
        if s is None or g is None:
            raise LookupError(f"NOGROUP no such stream {stream!r} or consumer group {group!r}")
        return s, g

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last_id[0]}-{self._last_id[1]}"

    def _ack(self, stream: str, group: str, ids: list[str]) -> int:
        for entry_id in ids:
            parse_id(entry_id)
        s = self._streams.get(stream)
        g = s.groups.get(group) if s is not None else None
        if g is None:
            return 0
        return sum(g.pel.pop(entry_id, None) is not None for entry_id in ids)

    def _reclaim(self, s: _Stream, g: _Group, consumer: str, count: int, idle_s: float) -> list[Entry]:
        now = self._clock()
        out: list[Entry] = []
        for entry_id, p in g.pel.items():
            if len(out) >= count:
                break
            if now - p.delivered_at >= idle_s:
                p.consumer, p.delivered_at, p.deliveries = consumer, now, p.deliveries + 1
                out.append(Entry(entry_id, s.payloads[entry_id], p.deliveries))
        return out

    def _read_new(self, s: _Stream, g: _Group, consumer: str, count: int) -> list[Entry]:
        start = bisect.bisect_right(s.ids, g.last_id)
        now = self._clock()
        out: list[Entry] = []
        for i in range(start, min(start + count, len(s.ids))):
            entry_id = s.id_strs[i]
            g.pel[entry_id] = _Pending(consumer, now, 1)
            g.last_id = s.ids[i]
            out.append(Entry(entry_id, s.payloads[entry_id], 1))
        return out

    # -- ReplayQueue ------------------------------------------------------------------------

    def ensure_group(self, stream: str, group: str) -> None:
        with self._cond:
            self._streams.setdefault(stream, _Stream()).groups.setdefault(group, _Group())

    def put(self, stream: str, payload: bytes, ack: AckRef | None = None) -> str:
        with self._cond:
            if ack is not None:
                self._ack(ack.stream, ack.group, [ack.entry_id])
            s = self._streams.setdefault(stream, _Stream())
            entry_id = self._next_id()
            s.ids.append(self._last_id)
            s.id_strs.append(entry_id)
            s.payloads[entry_id] = bytes(payload)
            s.added += 1
            self._cond.notify_all()
            return entry_id

    def put_once(self, stream: str, payload: bytes, seq: int) -> bool:
        with self._cond:
            s = self._streams.setdefault(stream, _Stream())
            new_id = (0, seq + 1)
            if s.ids and s.ids[-1] >= new_id or (not s.ids and s.added > seq):
                return False
            s.ids.append(new_id)
            s.id_strs.append(f"0-{seq + 1}")
            s.payloads[f"0-{seq + 1}"] = bytes(payload)
            s.added += 1
            self._cond.notify_all()
            return True

    def lease(self, stream: str, group: str, consumer: str, count: int, block_s: float = 0.0,
              reclaim_idle_s: float | None = None) -> list[Entry]:
        if count <= 0:
            raise ValueError("count must be positive")
        deadline = time.monotonic() + block_s
        with self._cond:
            s, g = self._group(stream, group)
            g.seen[consumer] = self._clock()
            out = self._reclaim(s, g, consumer, count, reclaim_idle_s) if reclaim_idle_s is not None else []
            if len(out) < count:
                out += self._read_new(s, g, consumer, count - len(out))
            while not out and block_s > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                s, g = self._group(stream, group)
                out = self._read_new(s, g, consumer, count)
            return out

    def pending_for(self, stream: str, group: str, consumer: str, count: int = 1000) -> list[Entry]:
        with self._cond:
            s, g = self._group(stream, group)
            now = self._clock()
            g.seen[consumer] = now
            out: list[Entry] = []
            for entry_id, p in g.pel.items():
                if len(out) >= count:
                    break
                if p.consumer == consumer:
                    p.delivered_at, p.deliveries = now, p.deliveries + 1
                    out.append(Entry(entry_id, s.payloads[entry_id], p.deliveries))
            return out

    def renew(self, stream: str, group: str, consumer: str, ids: list[str]) -> None:
        with self._cond:
            _, g = self._group(stream, group)
            now = self._clock()
            g.seen[consumer] = now
            for entry_id in ids:
                p = g.pel.get(entry_id)
                if p is not None and p.consumer == consumer:
                    p.delivered_at = now

    def ack(self, stream: str, group: str, ids: list[str]) -> int:
        with self._cond:
            return self._ack(stream, group, ids)

    def lag(self, stream: str, group: str) -> int:
        with self._cond:
            s, g = self._group(stream, group)
            return len(s.ids) - bisect.bisect_right(s.ids, g.last_id)

    def pending(self, stream: str, group: str) -> int:
        with self._cond:
            return len(self._group(stream, group)[1].pel)

    def length(self, stream: str) -> int:
        with self._cond:
            s = self._streams.get(stream)
            return len(s.ids) if s is not None else 0

    def added(self, stream: str) -> int:
        with self._cond:
            s = self._streams.get(stream)
            return s.added if s is not None else 0

    def trim(self, stream: str) -> int:
        with self._cond:
            s = self._streams.get(stream)
            if s is None or not s.groups:
                return 0
            keep_from = len(s.ids)
            for g in s.groups.values():
                keep_from = min(keep_from, bisect.bisect_right(s.ids, g.last_id))
                if g.pel:
                    keep_from = min(keep_from, min(bisect.bisect_left(s.ids, parse_id(i)) for i in g.pel))
            for entry_id in s.id_strs[:keep_from]:
                del s.payloads[entry_id]
            del s.ids[:keep_from], s.id_strs[:keep_from]
            return keep_from

    def group_info(self, stream: str, group: str) -> GroupInfo | None:
        with self._cond:
            s = self._streams.get(stream)
            g = s.groups.get(group) if s is not None else None
            if g is None:
                return None
            consumers = len({p.consumer for p in g.pel.values()} | set(g.seen))
            return GroupInfo(group, consumers, len(g.pel), len(s.ids) - bisect.bisect_right(s.ids, g.last_id))

    def consumers(self, stream: str, group: str) -> list[ConsumerInfo]:
        with self._cond:
            s = self._streams.get(stream)
            g = s.groups.get(group) if s is not None else None
            if g is None:
                return []
            now = self._clock()
            held: dict[str, int] = {}
            for p in g.pel.values():
                held[p.consumer] = held.get(p.consumer, 0) + 1
            return [ConsumerInfo(name, held.get(name, 0), now - g.seen[name]) for name in sorted(g.seen)]

    def recent(self, stream: str, count: int) -> list[bytes]:
        with self._cond:
            s = self._streams.get(stream)
            return [] if s is None else [s.payloads[i] for i in reversed(s.id_strs[-count:])] if count > 0 else []

    def unfinished(self, stream: str, group: str) -> list[bytes]:
        with self._cond:
            s, g = self._group(stream, group)
            start = bisect.bisect_right(s.ids, g.last_id)
            return [s.payloads[i] for k, i in enumerate(s.id_strs) if k >= start or i in g.pel]

    def set_value(self, key: str, value: str) -> None:
        with self._cond:
            self._values[key] = value

    def set_values(self, values: dict[str, str]) -> None:
        with self._cond:
            self._values.update(values)

    def get_values(self, keys: list[str]) -> list[str | None]:
        with self._cond:
            return [self._values.get(k) for k in keys]

    def delete_value(self, key: str) -> None:
        with self._cond:
            self._values.pop(key, None)

    def get_value(self, key: str) -> str | None:
        with self._cond:
            return self._values.get(key)

    def ping(self) -> bool:
        """Always healthy: there is no connection to lose."""
        return True
