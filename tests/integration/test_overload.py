"""Overload: the reward service, a real process on real Redis, flooded at 10x what it admits.

The math lane admits 16 samples (two groups of 8) at a time; 8 threads submit 160 groups as fast
as they can. The promise: the excess is refused with RESOURCE_EXHAUSTED (backpressure the actor
retries on), every group that was accepted reaches the scored-groups stream exactly once, the
process's memory stays bounded, and it serves normally afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
import yaml

from relayrl.replay.keys import StreamKeys
from relayrl.replay.private_redis import free_port
from relayrl.reward.client import GrpcRewardClient
from relayrl.reward.errors import Saturated
from relayrl.rpc import wait_ready
from relayrl.wire import common_pb2

GROUPS, THREADS, SAMPLES = 160, 8, 8


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError("no VmRSS")


def make_group(k: int) -> common_pb2.Group:
    prompt = common_pb2.Prompt(prompt_id=f"o{k}", text="31353?", kind="math", reference="3")
    return common_pb2.Group(group_id=f"o{k}", prompt=prompt, samples=[
        common_pb2.Sample(sample_id=f"o{k}/{i}", text=f"<think>count</think><answer>{i % 4}</answer>" + "x" * 2000)
        for i in range(SAMPLES)])


def test_ten_times_capacity_is_refused_not_lost(tmp_path, redis_url):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"run": "flood", "queue": {"type": "redis", "url": redis_url},
                                      "reward": {"lanes": {"math": {"workers": 2, "max_pending": 16}}}}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", "reward", "--config", str(config),
                             "--port", str(port)], stdout=open(tmp_path / "reward.log", "wb"), stderr=subprocess.STDOUT)
    client = GrpcRewardClient(f"127.0.0.1:{port}")
    try:
        wait_ready(f"127.0.0.1:{port}", timeout_s=60)
        assert client.score("math", "\\boxed{3}", "3").outcome == "pass"  # warm: worker pool started
        baseline = rss_mb(proc.pid)
        accepted, refused, peak = [], [], [baseline]
        todo = list(range(GROUPS))
        lock = threading.Lock()

        def flood() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    k = todo.pop()
                try:
                    assert client.submit(make_group(k)) is True
                    with lock:
                        accepted.append(f"o{k}")
                except Saturated:
                    with lock:
                        refused.append(f"o{k}")
                with lock:
                    peak.append(rss_mb(proc.pid))

        threads = [threading.Thread(target=flood) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(accepted) + len(refused) == GROUPS
        assert refused, "10x the lane's capacity was all admitted: no backpressure"
        assert accepted, "nothing was admitted"

        r = redis.Redis.from_url(redis_url)
        stream = StreamKeys("flood").groups
        deadline = time.monotonic() + 120
        while r.xlen(stream) < len(accepted) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # anything extra (a duplicate) would land now
        stored = [common_pb2.Group.FromString(fields[b"d"]).group_id for _, fields in r.xrange(stream)]
        r.close()
        assert sorted(stored) == sorted(accepted)  # every accepted group exactly once, nothing refused
        print(f"accepted {len(accepted)}, refused {len(refused)}, rss {baseline:.0f} -> peak {max(peak):.0f} MB")
        assert max(peak) - baseline < 150, "memory grew with the offered load"
        assert proc.poll() is None
        assert client.score("math", "\\boxed{4}", "3").outcome == "fail"  # still serving
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)
