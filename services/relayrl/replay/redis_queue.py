"""The networked replay queue: Redis Streams with consumer groups (Redis >= 7.0).

Each method maps onto one or a few stream commands, so every service sees the same delivery
semantics whatever process or machine it runs on:

- `put` is XADD with one field `d` holding the payload; with an `AckRef` it is XACK + XADD in one
  MULTI/EXEC transaction, so a hand-off from one stream to the next is never half done (a crash
  leaves either both or neither);
- `lease` first takes over entries idle past `reclaim_idle_s` (XAUTOCLAIM, the work of a dead
  consumer), then reads new entries (XREADGROUP `>`), blocking only when nothing was reclaimed;
- `pending_for` re-reads a consumer's own pending entries (XREADGROUP `0`), which Redis counts
  as a delivery; `renew` resets the idle time of entries the consumer still owns (XCLAIM JUSTID,
  in a script that checks ownership so a renewal never steals back a reclaimed entry);
- `lag` is XINFO GROUPS' `lag`, `pending` the XPENDING summary, `length` XLEN.

The client uses RESP2 and undecoded replies (payloads are bytes). redis-py clients are
thread-safe: each command takes a connection from the pool, so a blocking XREADGROUP in one
thread does not hold up the others. Not covered: Redis Cluster (a `put` with an `AckRef` spans
two keys, which must then share a hash slot), and reconnection policy (redis-py's defaults).
"""

from __future__ import annotations

import re

import redis

from relayrl.replay.base import AckRef, ConsumerInfo, Entry, GroupInfo, ReplayQueue

_ID = re.compile(rb"^\d+(-\d+)?$")
_FIELD = b"d"
_XRANGE_PAGE = 1000

# Reset the idle time of the given entries, but only those `consumer` still owns: a plain
# XCLAIM would move an entry that another consumer has reclaimed meanwhile back to us.
_RENEW = """
local owned = {}
for i = 3, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) > 0 then
    owned[#owned + 1] = ARGV[i]
  end
end
local n = #owned
if n > 0 then
  owned[n + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(owned))
end
return n
"""


def _check_id(entry_id: str) -> None:
    if not _ID.match(entry_id.encode()):
        raise ValueError(f"invalid stream entry id {entry_id!r}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = _text(entry_id).partition("-")
    return int(ms), int(seq or 0)


class RedisReplayQueue(ReplayQueue):
    """`ReplayQueue` over a Redis server at `url` (`redis://host:port/db`)."""

    def __init__(self, url: str, timeout_s: float | None = None) -> None:
        """`timeout_s` bounds connecting and each reply (None: redis-py's default, no timeout;
        a read-only observer such as the gateway sets one so a dead Redis cannot hang it)."""
        self.url = url
        self._r = redis.Redis.from_url(url, decode_responses=False, protocol=2, socket_timeout=timeout_s,
                                       socket_connect_timeout=timeout_s)
        self._renew = self._r.register_script(_RENEW)

    def ensure_group(self, stream: str, group: str) -> None:
        try:
            self._r.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as e:
            # Every consumer calls this at start; the group existing already is the common case.
            if not str(e).startswith("BUSYGROUP"):
                raise

    def put(self, stream: str, payload: bytes, ack: AckRef | None = None) -> str:
        if ack is None:
            return _text(self._r.xadd(stream, {_FIELD: payload}))
        # Checked here because MULTI does not roll back: a bad id would fail the XACK at EXEC
        # time while the XADD still went through.
        _check_id(ack.entry_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.xack(ack.stream, ack.group, ack.entry_id)
        pipe.xadd(stream, {_FIELD: payload})
        _, entry_id = pipe.execute()
        return _text(entry_id)

    def put_once(self, stream: str, payload: bytes, seq: int) -> bool:
        try:
            self._r.xadd(stream, {_FIELD: payload}, id=f"0-{seq + 1}")
            return True
        except redis.ResponseError as exc:
            if "equal or smaller" in str(exc):  # this entry (or a later one) is there already
                return False
            raise

    def lease(self, stream: str, group: str, consumer: str, count: int, block_s: float = 0.0,
              reclaim_idle_s: float | None = None) -> list[Entry]:
        if count <= 0:
            raise ValueError("count must be positive")
        out: list[Entry] = []
        if reclaim_idle_s is not None:
            out = self._reclaim(stream, group, consumer, count, reclaim_idle_s)
        if len(out) < count:
            # BLOCK 0 means forever in Redis, so no BLOCK at all when not waiting.
            block = max(1, round(block_s * 1000)) if block_s > 0 and not out else None
            reply = self._r.xreadgroup(group, consumer, {stream: ">"}, count=count - len(out), block=block)
            out += [Entry(_text(i), fields[_FIELD], 1) for _, msgs in reply or [] for i, fields in msgs]
        return out

    def _reclaim(self, stream: str, group: str, consumer: str, count: int, idle_s: float) -> list[Entry]:
        claimed: list[tuple[bytes, bytes]] = []
        cursor: bytes | str = "0-0"
        while len(claimed) < count:
            # One XAUTOCLAIM scans at most 10 * COUNT pending entries; follow its cursor.
            cursor, msgs, *_deleted = self._r.xautoclaim(
                stream, group, consumer, round(idle_s * 1000), start_id=cursor, count=count - len(claimed))
            # Entries deleted from the stream: Redis 7 drops them from the PEL and lists them apart,
            # Redis 6.2 returned them with no fields.
            claimed += [(i, fields[_FIELD]) for i, fields in msgs if fields]
            if _text(cursor) == "0-0":
                break
        if not claimed:
            return []
        pipe = self._r.pipeline(transaction=False)
        for entry_id, _ in claimed:
            pipe.xpending_range(stream, group, entry_id, entry_id, 1, consumername=consumer)
        counts = {row["message_id"]: row["times_delivered"] for rows in pipe.execute() for row in rows}
        # Missing only if another consumer took the entry over in between: it was delivered at
        # least twice (the first lease and our claim).
        return [Entry(_text(i), payload, counts.get(i, 2)) for i, payload in claimed]

    def pending_for(self, stream: str, group: str, consumer: str, count: int = 1000) -> list[Entry]:
        pipe = self._r.pipeline(transaction=True)
        pipe.xreadgroup(group, consumer, {stream: "0"}, count=count)
        pipe.xpending_range(stream, group, "-", "+", count, consumername=consumer)
        reply, rows = pipe.execute()
        counts = {row["message_id"]: row["times_delivered"] for row in rows}
        msgs = [m for _, stream_msgs in reply or [] for m in stream_msgs]
        gone = [i for i, fields in msgs if not fields]
        if gone:
            # Deleted from the stream (XDEL/XTRIM by someone else): it can never be processed, so
            # drop it from the PEL, as XAUTOCLAIM does.
            self._r.xack(stream, group, *gone)
        return [Entry(_text(i), fields[_FIELD], counts.get(i, 1)) for i, fields in msgs if fields]

    def renew(self, stream: str, group: str, consumer: str, ids: list[str]) -> None:
        if ids:
            self._renew(keys=[stream], args=[group, consumer, *ids])

    def ack(self, stream: str, group: str, ids: list[str]) -> int:
        return int(self._r.xack(stream, group, *ids)) if ids else 0

    def lag(self, stream: str, group: str) -> int:
        info = self._groups(stream).get(group)
        if info is None:
            raise LookupError(f"no consumer group {group!r} on stream {stream!r}")
        if info.get("lag") is not None:
            return int(info["lag"])
        # Redis reports no lag when it cannot derive it from counters (entries deleted from the
        # middle of the stream): count the entries after the group's cursor.
        return self._count_after(stream, _text(info["last-delivered-id"]))

    def _count_after(self, stream: str, last_id: str) -> int:
        n, start = 0, f"({last_id}"
        while True:
            page = self._r.xrange(stream, min=start, max="+", count=_XRANGE_PAGE)
            n += len(page)
            if len(page) < _XRANGE_PAGE:
                return n
            start = f"({_text(page[-1][0])}"

    def pending(self, stream: str, group: str) -> int:
        return int(self._r.xpending(stream, group)["pending"])

    def length(self, stream: str) -> int:
        return int(self._r.xlen(stream))

    def added(self, stream: str) -> int:
        try:
            return int(self._r.xinfo_stream(stream)["entries-added"])
        except redis.ResponseError:  # no such stream
            return 0

    def trim(self, stream: str) -> int:
        groups = self._groups(stream)
        if not groups:  # no such stream, or no group: nothing is known to be done with
            return 0
        bounds = []
        for name, g in groups.items():
            ms, seq = _id_tuple(g["last-delivered-id"])
            bounds.append((ms, seq + 1))  # the first entry this group has not been delivered
            if int(g["pending"]):
                bounds.append(_id_tuple(self._r.xpending(stream, name)["min"]))
        ms, seq = min(bounds)
        return int(self._r.xtrim(stream, minid=f"{ms}-{seq}", approximate=False))

    def _groups(self, stream: str) -> dict[str, dict]:
        try:
            return {_text(g["name"]): g for g in self._r.xinfo_groups(stream)}
        except redis.ResponseError:  # no such stream
            return {}

    def group_info(self, stream: str, group: str) -> GroupInfo | None:
        info = self._groups(stream).get(group)
        if info is None:
            return None
        lag = info.get("lag")
        waiting = int(lag) if lag is not None else self._count_after(stream, _text(info["last-delivered-id"]))
        return GroupInfo(group, int(info["consumers"]), int(info["pending"]), waiting)

    def consumers(self, stream: str, group: str) -> list[ConsumerInfo]:
        if group not in self._groups(stream):
            return []
        rows = self._r.xinfo_consumers(stream, group)
        return sorted((ConsumerInfo(_text(r["name"]), int(r["pending"]), int(r["idle"]) / 1000) for r in rows),
                      key=lambda c: c.name)

    def recent(self, stream: str, count: int) -> list[bytes]:
        if count <= 0:
            return []
        return [fields[_FIELD] for _, fields in self._r.xrevrange(stream, count=count)]

    def unfinished(self, stream: str, group: str) -> list[bytes]:
        info = self._groups(stream).get(group)
        if info is None:
            raise LookupError(f"no consumer group {group!r} on stream {stream!r}")
        last = _id_tuple(info["last-delivered-id"])
        pending: set[tuple[int, int]] = set()
        start = "-"
        while True:  # the whole pending list, a page at a time
            rows = self._r.xpending_range(stream, group, start, "+", _XRANGE_PAGE)
            pending.update(_id_tuple(r["message_id"]) for r in rows)
            if len(rows) < _XRANGE_PAGE:
                break
            start = f"({_text(rows[-1]['message_id'])}"
        out, start = [], "-"
        while True:
            page = self._r.xrange(stream, min=start, max="+", count=_XRANGE_PAGE)
            out += [fields[_FIELD] for i, fields in page if _id_tuple(i) in pending or _id_tuple(i) > last]
            if len(page) < _XRANGE_PAGE:
                return out
            start = f"({_text(page[-1][0])}"

    def set_value(self, key: str, value: str) -> None:
        self._r.set(key, value)

    def set_values(self, values: dict[str, str]) -> None:
        self._r.mset(values)  # one command: atomic

    def get_values(self, keys: list[str]) -> list[str | None]:
        return [None if v is None else _text(v) for v in self._r.mget(keys)]

    def delete_value(self, key: str) -> None:
        self._r.delete(key)

    def get_value(self, key: str) -> str | None:
        value = self._r.get(key)
        return None if value is None else _text(value)

    def ping(self) -> bool:
        """True when the server answers; raises `redis.ConnectionError` when it cannot be reached."""
        return bool(self._r.ping())

    def close(self) -> None:
        self._r.close()
