"""Unit tests of `MemoryReplayQueue` where it needs no Redis: exact idle-time boundaries with an
injected clock, id generation, concurrency, errors, and `make_queue`.

The behaviour it shares with Redis (lease, reclaim, renew, ack, counts, blocking) is checked on
both backends in tests/integration/test_redis_queue.py; here the clock is fake, so the boundaries
are checked exactly instead of with sleeps.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from relayrl.config import MemoryQueue, RedisQueue, RunConfig
from relayrl.replay import Entry, MemoryReplayQueue, RedisReplayQueue, make_queue
from relayrl.replay.memory_queue import parse_id

S, G = "relayrl:t:prompts", "actors"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def q(clock):
    queue = MemoryReplayQueue(clock=clock)
    queue.ensure_group(S, G)
    return queue


def test_reclaim_starts_exactly_at_the_idle_threshold(q, clock):
    entry_id = q.put(S, b"x")
    q.lease(S, G, "c1", 1)
    clock.now += 0.999
    assert q.lease(S, G, "c2", 1, reclaim_idle_s=1.0) == []
    clock.now += 0.001
    assert q.lease(S, G, "c2", 1, reclaim_idle_s=1.0) == [Entry(entry_id, b"x", 2)]
    # The claim restarted the idle time, now owned by c2.
    assert q.lease(S, G, "c3", 1, reclaim_idle_s=1.0) == []
    clock.now += 1.0
    assert q.lease(S, G, "c3", 1, reclaim_idle_s=1.0) == [Entry(entry_id, b"x", 3)]


def test_reclaim_zero_takes_every_pending_entry_in_id_order(q):
    ids = [q.put(S, b"%d" % i) for i in range(3)]
    q.lease(S, G, "c1", 1)
    q.lease(S, G, "c2", 2)
    assert [(e.id, e.deliveries) for e in q.lease(S, G, "c3", 10, reclaim_idle_s=0.0)] == \
        [(i, 2) for i in ids]
    assert q.pending_for(S, G, "c1") == [] and q.pending_for(S, G, "c2") == []


def test_renew_restarts_idle_time_of_owned_entries_only(q, clock):
    a, b = q.put(S, b"a"), q.put(S, b"b")
    q.lease(S, G, "c1", 1)
    q.lease(S, G, "c2", 1)
    clock.now += 5.0
    q.renew(S, G, "c1", [a, b, "99-0"])  # b is c2's, 99-0 is not pending: both ignored
    assert q.lease(S, G, "c3", 5, reclaim_idle_s=5.0) == [Entry(b, b"b", 2)]
    clock.now += 4.9
    assert q.lease(S, G, "c3", 5, reclaim_idle_s=5.0) == []
    assert q.pending_for(S, G, "c1") == [Entry(a, b"a", 2)]


def test_ids_are_ms_seq_and_strictly_increasing(q):
    ids = [q.put(S, b"") for _ in range(500)]
    assert all(re.fullmatch(r"\d+-\d+", i) for i in ids)
    parsed = [parse_id(i) for i in ids]
    assert parsed == sorted(set(parsed))
    assert abs(parsed[-1][0] - time.time() * 1000) < 60_000


def test_ids_keep_increasing_when_the_wall_clock_steps_back(q, monkeypatch):
    times = iter([1000.0, 999.0, 1000.0, 1000.002])
    monkeypatch.setattr(time, "time", lambda: next(times))
    assert [q.put(S, b"") for _ in range(4)] == ["1000000-0", "1000000-1", "1000000-2", "1000002-0"]


def test_parse_id():
    assert parse_id("5-3") == (5, 3)
    assert parse_id("5") == (5, 0)
    for bad in ["", "-1", "a-1", "1-", "1-b", "1-2-3"]:
        with pytest.raises(ValueError):
            parse_id(bad)


def test_errors(q):
    for call in [lambda: q.lease(S, "nobody", "c", 1), lambda: q.pending_for("nostream", G, "c"),
                 lambda: q.lag(S, "nobody"), lambda: q.pending("nostream", G),
                 lambda: q.renew(S, "nobody", "c", ["1-0"])]:
        with pytest.raises(LookupError, match="NOGROUP"):
            call()
    assert q.ack("nostream", G, ["1-0"]) == 0
    assert q.length("nostream") == 0
    with pytest.raises(ValueError):
        q.ack(S, G, ["bogus"])
    with pytest.raises(ValueError):
        q.lease(S, G, "c", 0)


def test_concurrent_consumers_get_each_entry_exactly_once():
    q = MemoryReplayQueue()
    q.ensure_group(S, G)
    n, seen, lock = 400, [], threading.Lock()

    def consume(name: str) -> None:
        while True:
            got = q.lease(S, G, name, 7, block_s=0.2)
            if not got:
                return
            with lock:
                seen.extend(e.id for e in got)
            q.ack(S, G, [e.id for e in got])

    consumers = [threading.Thread(target=consume, args=(f"c{i}",)) for i in range(4)]
    for t in consumers:
        t.start()
    ids = [q.put(S, b"%d" % i) for i in range(n)]
    for t in consumers:
        t.join(timeout=10)
    assert sorted(seen) == sorted(ids) and len(seen) == n
    assert (q.pending(S, G), q.lag(S, G)) == (0, 0)


def test_make_queue_builds_the_configured_backend():
    assert isinstance(make_queue(MemoryQueue()), MemoryReplayQueue)
    cfg = RunConfig.model_validate({"queue": {"type": "redis", "url": "redis://cfg:6379/0"}}).queue
    from_cfg = make_queue(cfg)  # redis-py connects lazily: nothing is contacted here
    assert isinstance(from_cfg, RedisReplayQueue) and from_cfg.url == "redis://cfg:6379/0"
    assert make_queue(cfg, "redis://launcher:7000/0").url == "redis://launcher:7000/0"
    assert make_queue(RedisQueue(), "redis://launcher:7000/0").url == "redis://launcher:7000/0"
    with pytest.raises(ValueError, match="no URL"):
        make_queue(RedisQueue())
