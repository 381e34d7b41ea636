"""Nothing is generated twice while a reward is slow: prompt leases are renewed for groups in flight.

Real parts: a real Redis, the reward service (as a `relayrl serve reward` process, or in process)
with its slow lane scoring math through a worker loop under an emulated latency longer than the
prompts' lease, real actors generating with the tiny model. A second consumer polling the prompts
stream with XAUTOCLAIM stands for any other actor: it must get nothing while the group waits for
its rewards, and get the prompt once the reward service that held it is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import yaml

from relayrl import metrics
from relayrl.config import RunConfig
from relayrl.replay import RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.replay.private_redis import free_port, wait_port
from relayrl.reward.client import GrpcRewardClient, InProcessRewardClient
from relayrl.reward.service import RewardService
from relayrl.rollout.actor import Actor
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights.source import InProcessWeightSource
from relayrl.weights.store import WeightStore
from relayrl.wire import common_pb2

RUN = "leases"
LEASE_S = 0.5


def run_cfg(redis_url: str, latency_s: float) -> RunConfig:
    return RunConfig.model_validate({
        "run": RUN, "queue": {"type": "redis", "url": redis_url, "lease_idle_s": LEASE_S},
        "rollout": {"prompts_per_batch": 2, "sampling": {"group_size": 2, "max_new_tokens": 4}},
        "reward": {"slow_lane": {"kinds": ["math"], "service_workers": 1, "concurrency": 8, "poll_s": 0.1,
                                 "emulate_latency": {"median_s": latency_s, "p99_s": latency_s}}}})


def put_prompt(queue: RedisReplayQueue, n: int) -> str:
    prompt = common_pb2.Prompt(prompt_id=f"{RUN}-p{n}", text="2+3=", kind="math", reference="5")
    return queue.put(StreamKeys(RUN).prompts, prompt.SerializeToString())


def group_for(entry_id: str, n: int, actor_id: str) -> common_pb2.Group:
    prompt = common_pb2.Prompt(prompt_id=f"{RUN}-p{n}", text="2+3=", kind="math", reference="5")
    return common_pb2.Group(group_id=prompt.prompt_id, prompt=prompt, actor_id=actor_id, prompt_entry_id=entry_id,
                            prompt_deliveries=1, samples=[common_pb2.Sample(sample_id=f"{prompt.prompt_id}/{i}", text=t)
                                                          for i, t in enumerate(["\\boxed{5}", "\\boxed{4}"])])


def written(queue: RedisReplayQueue) -> list[common_pb2.Group]:
    """Every group written so far (this reader never acknowledges, so it re-reads its own first)."""
    queue.ensure_group(StreamKeys(RUN).groups, StreamKeys.LEARNER)
    entries = queue.pending_for(StreamKeys(RUN).groups, StreamKeys.LEARNER, "test")
    entries += queue.lease(StreamKeys(RUN).groups, StreamKeys.LEARNER, "test", count=100)
    return [common_pb2.Group.FromString(e.payload) for e in entries]


def steal(queue: RedisReplayQueue):
    """What another actor would take over now (XAUTOCLAIM past the lease)."""
    return queue.lease(StreamKeys(RUN).prompts, StreamKeys.ACTORS, "other-actor", count=10, reclaim_idle_s=LEASE_S)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_slow_groups_prompt_stays_leased_until_its_reward_service_dies(redis_url, tmp_path):
    queue = RedisReplayQueue(redis_url)
    k = StreamKeys(RUN)
    queue.ensure_group(k.prompts, StreamKeys.ACTORS)
    entry = put_prompt(queue, 0)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run_cfg(redis_url, latency_s=30.0).model_dump(mode="json")))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", "reward", "--config", str(path),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "reward.err", "wb"))
    client = GrpcRewardClient(f"127.0.0.1:{port}")
    try:
        wait_port(port, timeout_s=60, proc=proc)
        (leased,) = queue.lease(k.prompts, StreamKeys.ACTORS, "actor-0", count=1)
        assert client.submit(group_for(entry, 0, "actor-0"))
        deadline = time.monotonic() + 6 * LEASE_S  # six leases' worth of waiting for a 30 s reward
        while time.monotonic() < deadline:
            assert steal(queue) == [], "another actor took over a prompt whose group waits for its reward"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the group is lost with its reward service: renewals stop
        proc.wait()
        started = time.monotonic()
        (taken,) = wait_for(lambda: steal(queue), 10 * LEASE_S, "the dead service's prompt to be re-leased")
        assert taken.id == leased.id and taken.deliveries == 2
        assert time.monotonic() - started < 4 * LEASE_S
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_actors_never_generate_a_slow_group_twice_and_count_what_they_regenerate(redis_url, tiny_model_dir):
    cfg = run_cfg(redis_url, latency_s=6 * LEASE_S)
    queue = RedisReplayQueue(redis_url)
    k = StreamKeys(RUN)
    service = RewardService(cfg.reward, queue, RUN, prompt_lease_s=LEASE_S)
    actors = [Actor(cfg, f"actor-{i}", TransformersEngine(str(tiny_model_dir)), queue,
                    InProcessWeightSource(WeightStore()), InProcessRewardClient(service)) for i in range(2)]
    # a prompt leased by an actor that dies at once: one real regeneration, counted
    put_prompt(queue, 4)
    assert len(queue.lease(k.prompts, StreamKeys.ACTORS, "ghost", count=1)) == 1
    for n in range(4):
        put_prompt(queue, n)
    before = metrics.PROMPT_REGENERATIONS._value.get()
    threads = [threading.Thread(target=a.run, daemon=True) for a in actors]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(written(queue)) >= 5, 120, "five scored groups")
        time.sleep(3 * LEASE_S)  # long enough for any late takeover to show
        groups = written(queue)
        assert sorted(g.group_id for g in groups) == [f"{RUN}-p{n}" for n in range(5)]  # each generated once
        assert {g.group_id: g.prompt_deliveries for g in groups}[f"{RUN}-p4"] == 2
        assert all(g.prompt_deliveries == 1 for g in groups if g.group_id != f"{RUN}-p4")
        assert queue.get_value(k.regenerations) == "1"  # the ghost's prompt, and nothing else
        assert metrics.PROMPT_REGENERATIONS._value.get() - before == 1
        assert queue.pending(k.prompts, StreamKeys.ACTORS) == 0
        assert sum(a.groups_generated for a in actors) == 5
    finally:
        for a in actors:
            a.stop.set()
        for t in threads:
            t.join(timeout=30)
        service.close(drain=False)
