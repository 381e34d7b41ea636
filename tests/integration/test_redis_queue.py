"""The replay-queue contract, checked on both backends against a real redis-server.

The behaviour tests take the `make` fixture, parametrised over `MemoryReplayQueue` and
`RedisReplayQueue`, so the in-memory queue that unit tests rely on is held to exactly what Redis
does. The Redis-only tests kill real consumer processes with SIGKILL mid-lease and check that
their work is re-leased to another consumer and that no entry is ever lost.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from relayrl.replay import AckRef, Entry, MemoryReplayQueue, RedisReplayQueue

S, G = "relayrl:t:prompts", "actors"


@pytest.fixture(params=["memory", "redis"])
def make(request):
    """Makes handles onto one backend; a second handle is what a restarted process would see."""
    if request.param == "memory":
        shared = MemoryReplayQueue()
        yield lambda: shared
        return
    url = request.getfixturevalue("redis_url")
    handles: list[RedisReplayQueue] = []
    yield lambda: handles.append(RedisReplayQueue(url)) or handles[-1]
    for h in handles:
        h.close()


@pytest.fixture
def q(make):
    queue = make()
    queue.ensure_group(S, G)
    return queue


def test_round_trip_and_ack_is_idempotent(q):
    entry_id = q.put(S, b"a")
    assert q.lease(S, G, "c1", 10) == [Entry(entry_id, b"a", 1)]
    assert q.pending(S, G) == 1
    assert q.ack(S, G, [entry_id]) == 1
    assert q.ack(S, G, [entry_id]) == 0
    assert q.pending(S, G) == 0
    assert q.lease(S, G, "c1", 10, reclaim_idle_s=0.0) == []


def test_read_only_views_of_groups_consumers_and_entries(make):
    """What the gateway, the ledger and the progress display read, without raw Redis commands."""
    q = make()
    assert q.group_info(S, G) is None and q.consumers(S, G) == [] and q.recent(S, 5) == []
    q.ensure_group(S, G)
    ids = [q.put(S, f"p{i}".encode()) for i in range(5)]
    assert q.group_info(S, G).waiting == 5 and q.group_info(S, "other") is None
    got = q.lease(S, G, "c1", 2) + q.lease(S, G, "c2", 1)
    q.ack(S, G, [got[0].id])
    info = q.group_info(S, G)
    assert (info.name, info.consumers, info.pending, info.waiting) == (G, 2, 2, 2)
    assert [(c.name, c.pending) for c in q.consumers(S, G)] == [("c1", 1), ("c2", 1)]
    assert all(0 <= c.idle_s < 5 for c in q.consumers(S, G))
    assert q.recent(S, 2) == [b"p4", b"p3"] and q.recent(S, 0) == []
    # not acknowledged: the two leased (p1, p2) and the two never delivered (p3, p4), in order
    assert q.unfinished(S, G) == [b"p1", b"p2", b"p3", b"p4"]
    assert ids[0] not in {e.id for e in q.pending_for(S, G, "c1")}
    with pytest.raises(LookupError):
        q.unfinished(S, "nobody")
    q.set_value("k", "v")
    q.delete_value("k")
    q.delete_value("k")  # unsetting twice is no error
    assert q.get_value("k") is None and q.ping()


def test_group_reads_from_start_and_ensure_is_idempotent(make):
    q = make()
    first = q.put(S, b"before")
    q.ensure_group(S, G)
    q.ensure_group(S, G)
    assert [e.id for e in q.lease(S, G, "c1", 10)] == [first]


def test_missing_group_is_an_error(make):
    with pytest.raises((LookupError, redis.ResponseError), match="NOGROUP"):
        make().lease(S, "nobody", "c1", 1)


def test_second_consumer_does_not_get_a_leased_entry(q):
    first = q.put(S, b"1")
    assert [e.id for e in q.lease(S, G, "c1", 1)] == [first]
    assert q.lease(S, G, "c2", 5) == []
    assert q.lease(S, G, "c2", 5, reclaim_idle_s=60.0) == []
    second = q.put(S, b"2")
    assert q.lease(S, G, "c2", 5, reclaim_idle_s=60.0) == [Entry(second, b"2", 1)]


def test_counts_and_ids(make):
    q = make()
    assert q.length(S) == 0
    ids = [q.put(S, bytes([i])) for i in range(5)]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert len(set(ids)) == 5
    q.ensure_group(S, G)
    assert (q.length(S), q.lag(S, G), q.pending(S, G)) == (5, 5, 0)
    assert [e.payload for e in q.lease(S, G, "c1", 2)] == [b"\x00", b"\x01"]
    assert (q.length(S), q.lag(S, G), q.pending(S, G)) == (5, 3, 2)
    assert q.ack(S, G, ids[:1]) == 1
    assert (q.length(S), q.lag(S, G), q.pending(S, G)) == (5, 3, 1)
    q.ensure_group(S, "other")
    assert (q.lag(S, "other"), q.pending(S, "other")) == (5, 0)


def test_put_with_ack_hands_off_atomically(q):
    src_id = q.put(S, b"job")
    [leased] = q.lease(S, G, "c1", 1)
    out_id = q.put("relayrl:t:groups", b"result", ack=AckRef(S, G, leased.id))
    assert leased.id == src_id
    assert q.pending(S, G) == 0
    q.ensure_group("relayrl:t:groups", "learner")
    assert q.lease("relayrl:t:groups", "learner", "l", 5) == [Entry(out_id, b"result", 1)]
    with pytest.raises(ValueError):
        q.put("relayrl:t:groups", b"x", ack=AckRef(S, G, "not-an-id"))
    assert q.length("relayrl:t:groups") == 1


def test_idle_entries_are_reclaimed_first_then_new_ones(q):
    a, b = q.put(S, b"a"), q.put(S, b"b")
    assert len(q.lease(S, G, "c1", 2)) == 2
    assert q.lease(S, G, "c2", 3, reclaim_idle_s=0.1) == []
    time.sleep(0.15)
    c = q.put(S, b"c")
    assert q.lease(S, G, "c2", 1, reclaim_idle_s=0.1) == [Entry(a, b"a", 2)]
    assert q.lease(S, G, "c2", 3, reclaim_idle_s=0.1) == [Entry(b, b"b", 2), Entry(c, b"c", 1)]
    assert q.pending_for(S, G, "c1") == []
    assert q.pending(S, G) == 3


def test_renew_keeps_the_lease_and_never_steals(q):
    entry_id = q.put(S, b"long job")
    q.lease(S, G, "c1", 1)
    time.sleep(0.15)
    q.renew(S, G, "c1", [entry_id])
    assert q.lease(S, G, "c2", 1, reclaim_idle_s=0.1) == []
    time.sleep(0.15)
    q.renew(S, G, "c2", [entry_id])  # c2 does not own it: no effect
    assert q.lease(S, G, "c2", 1, reclaim_idle_s=0.1) == [Entry(entry_id, b"long job", 2)]
    q.renew(S, G, "c1", [entry_id])  # c1 lost it: must not take it back
    assert q.pending_for(S, G, "c1") == []
    assert q.pending_for(S, G, "c2") == [Entry(entry_id, b"long job", 3)]


def test_pending_for_after_restart(make, q):
    ids = [q.put(S, b"%d" % i) for i in range(3)]
    q.lease(S, G, "c1", 3)
    q.ack(S, G, [ids[1]])
    restarted = make()
    # Re-reading counts as a delivery, as XREADGROUP 0 does.
    assert restarted.pending_for(S, G, "c1") == [Entry(ids[0], b"0", 2), Entry(ids[2], b"2", 2)]
    assert restarted.pending_for(S, G, "c1", count=1) == [Entry(ids[0], b"0", 3)]
    assert restarted.pending_for(S, G, "c2") == []


def test_block_returns_when_another_thread_puts(q):
    ids: list[str] = []
    producer = threading.Timer(0.2, lambda: ids.append(q.put(S, b"late")))
    producer.start()
    t0 = time.monotonic()
    got = q.lease(S, G, "c1", 5, block_s=5.0)
    elapsed = time.monotonic() - t0
    producer.join()  # the put's reply may reach its thread after the lease returned
    assert got == [Entry(ids[0], b"late", 1)]
    assert 0.15 <= elapsed < 2.0


def test_block_times_out_and_is_skipped_after_a_reclaim(q):
    t0 = time.monotonic()
    assert q.lease(S, G, "c1", 5, block_s=0.2) == []
    assert 0.18 <= time.monotonic() - t0 < 1.5
    entry_id = q.put(S, b"x")
    q.lease(S, G, "c1", 1)
    time.sleep(0.06)
    t0 = time.monotonic()
    assert q.lease(S, G, "c2", 5, block_s=5.0, reclaim_idle_s=0.05) == [Entry(entry_id, b"x", 2)]
    assert time.monotonic() - t0 < 1.0


def test_no_entry_lost_when_consumers_abandon_leases(q):
    rng = random.Random(7)
    ids = {q.put(S, b"%d" % i) for i in range(40)}
    processed: set[str] = set()
    generation = 0
    deadline = time.monotonic() + 10
    while q.lag(S, G) or q.pending(S, G):
        assert time.monotonic() < deadline, "entries stuck"
        consumer = f"c{rng.randrange(3)}-{generation}"
        got = q.lease(S, G, consumer, rng.randint(1, 5), reclaim_idle_s=0.05)
        if not got:
            time.sleep(0.06)
        elif rng.random() < 0.3:
            generation += 1  # the consumer dies holding its lease; its name is never used again
        else:
            processed |= {e.id for e in got}
            assert q.ack(S, G, [e.id for e in got]) == len(got)
    assert processed == ids


def test_shared_values(q):
    assert q.get_value("relayrl:t:version") is None
    q.set_value("relayrl:t:version", "3")
    assert q.get_value("relayrl:t:version") == "3"


def test_counters_start_at_zero_and_add_atomically(make):
    handles = [make(), make()]  # two processes counting into one key
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: handles[i % 2].incr("relayrl:t:regenerations"), range(200)))
    assert handles[0].incr("relayrl:t:regenerations", 5) == 205
    assert handles[1].get_value("relayrl:t:regenerations") == "205"


# -- Redis only: real processes killed with SIGKILL ----------------------------------------

CHILD = r"""
import sys, time
from relayrl.replay import RedisReplayQueue
url, stream, group, consumer, mode = sys.argv[1:6]
q = RedisReplayQueue(url)
if mode == "hold":
    for e in q.lease(stream, group, consumer, 1, block_s=5):
        print(e.id, flush=True)
    time.sleep(60)
while True:  # work: process (print) each entry, then acknowledge it
    for e in q.lease(stream, group, consumer, 2, block_s=0.05, reclaim_idle_s=0.3):
        print(e.id, flush=True)
        time.sleep(0.01)
        q.ack(stream, group, [e.id])
"""


def child(url: str, consumer: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, url, S, G, consumer, mode],
                            stdout=subprocess.PIPE, text=True)


def kill(proc: subprocess.Popen) -> str:
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return out


def test_consumer_killed_mid_lease_is_released_to_another(redis_url):
    q = RedisReplayQueue(redis_url)
    q.ensure_group(S, G)
    entry_id = q.put(S, b"work")
    proc = child(redis_url, "c1", "hold")
    assert proc.stdout.readline().strip() == entry_id
    kill(proc)
    assert q.pending(S, G) == 1
    assert q.lease(S, G, "c2", 1, reclaim_idle_s=0.2) == []  # not idle long enough yet
    time.sleep(0.25)
    assert q.lease(S, G, "c2", 1, reclaim_idle_s=0.2) == [Entry(entry_id, b"work", 2)]
    assert q.ack(S, G, [entry_id]) == 1
    assert (q.pending(S, G), q.lag(S, G)) == (0, 0)
    q.close()


def test_no_entry_lost_when_worker_processes_are_killed(redis_url):
    q = RedisReplayQueue(redis_url)
    q.ensure_group(S, G)
    ids = {q.put(S, b"%d" % i) for i in range(60)}
    workers = [child(redis_url, f"w{i}", "work") for i in range(3)]
    deadline = time.monotonic() + 15
    while q.lag(S, G) > 50:  # let them get going, then kill two mid-stream
        assert time.monotonic() < deadline
        time.sleep(0.02)
    outputs = [kill(workers[0])]
    time.sleep(0.1)
    outputs.append(kill(workers[1]))
    while q.lag(S, G) or q.pending(S, G):
        assert time.monotonic() < deadline, "entries stuck"
        time.sleep(0.05)
    outputs.append(kill(workers[2]))
    assert set("".join(outputs).split()) == ids
    q.close()


def test_lag_and_pending_for_survive_deleted_entries(redis_url):
    q = RedisReplayQueue(redis_url)
    q.ensure_group(S, G)
    ids = [q.put(S, b"%d" % i) for i in range(5)]
    q.lease(S, G, "c1", 2)
    raw = redis.Redis.from_url(redis_url)
    raw.xdel(S, ids[0], ids[3])  # one leased entry, one not yet delivered
    assert raw.xinfo_groups(S)[0]["lag"] is None  # Redis cannot tell: the fallback counts
    assert q.lag(S, G) == 2
    assert q.pending_for(S, G, "c1") == [Entry(ids[1], b"1", 2)]
    assert q.pending(S, G) == 1
    raw.close()
    q.close()


def test_trim_removes_only_what_every_group_is_done_with(q):
    q.ensure_group(S, "audit")  # a second group that has read nothing yet
    ids = [q.put(S, bytes([i])) for i in range(6)]
    assert q.trim(S) == 0  # "audit" has not been delivered anything
    q.lease(S, "audit", "x", 6)
    q.ack(S, "audit", ids)
    leased = q.lease(S, G, "c1", 4)  # delivered 0..3 to the actors group
    q.ack(S, G, [ids[0], ids[2]])  # 1 and 3 stay pending
    assert q.trim(S) == 1  # only entry 0: entry 1 is pending
    assert q.length(S) == 5
    q.ack(S, G, [ids[1], ids[3]])
    assert q.trim(S) == 3  # 1, 2, 3 — entries 4, 5 were never delivered to the actors group
    assert [e.payload for e in q.lease(S, G, "c1", 10)] == [bytes([4]), bytes([5])]
    assert len(leased) == 4 and q.length(S) == 2


def test_trim_keeps_a_stream_without_groups_and_a_missing_stream_is_fine(make):
    q = make()
    q.put("relayrl:t:nogroup", b"x")
    assert q.trim("relayrl:t:nogroup") == 0
    assert q.trim("relayrl:t:missing") == 0


def test_added_counts_every_entry_ever_put_trimmed_or_not(q):
    assert q.added("relayrl:t:missing") == 0
    ids = [q.put(S, b"x") for _ in range(3)]
    q.lease(S, G, "c1", 3)
    q.ack(S, G, ids)
    assert q.trim(S) == 3 and q.length(S) == 0
    assert q.added(S) == 3


def test_put_once_is_idempotent_per_sequence_number(q):
    assert q.put_once(S, b"p0", 0) and q.put_once(S, b"p1", 1)
    assert not q.put_once(S, b"p1 again", 1)  # a retry after a lost reply
    assert not q.put_once(S, b"p0 again", 0)
    entries = q.lease(S, G, "c1", 10)
    assert [(e.id, e.payload) for e in entries] == [("0-1", b"p0"), ("0-2", b"p1")]
    q.ack(S, G, [e.id for e in entries])
    q.trim(S)
    assert not q.put_once(S, b"p1 after trim", 1)  # still refused once trimmed away
    assert q.put_once(S, b"p2", 2) and q.added(S) == 3
