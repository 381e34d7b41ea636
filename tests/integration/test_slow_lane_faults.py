"""The slow lane under faults, on real Redis servers: an outage is retried, anything else stops the
process that met it.

Redis restarting (with its AOF, as the Helm chart runs it) is transient: a worker backs off and
carries on. Redis refusing a command is not: here the stream and its consumer group are deleted
under a running `relayrl serve reward-worker` / `relayrl serve reward`, every lease then fails
(NOGROUP, or UNBLOCKED for a lease blocked at that moment), and the process must exit non-zero
(its restart re-creates the group) instead of logging a warning every second forever.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis
import yaml

from relayrl.config import RewardConfig, RunConfig
from relayrl.replay import RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.replay.private_redis import start_private_redis
from relayrl.reward.verifiers.math import MathVerifier
from relayrl.reward.worker import Job, Worker
from tests.integration.test_slow_lane import RUN, results, reward_cfg


def test_a_worker_rides_out_a_redis_restart(tmp_path, wait_for):
    server, url = start_private_redis(tmp_path / "redis", durable=True)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    queue, k = RedisReplayQueue(url), StreamKeys(RUN)
    verifier = MathVerifier(RewardConfig(workers=1))
    worker = Worker(reward_cfg(), queue, RUN, "w", verifiers={"math": verifier})
    worker.start()
    try:
        server.terminate()
        server.wait(timeout=10)
        time.sleep(1.0)  # the worker's leases fail meanwhile (connection refused)
        server, _ = start_private_redis(tmp_path / "redis", durable=True, port=port)
        queue.put(k.swe, Job("g/0", "g", 0, "math", "\\boxed{5}", "5", k.swe_results, time.time()).dumps())
        (result,) = wait_for(lambda: results(url), 30, "the job's result after the restart")
        assert result["score"]["outcome"] == "pass"
        assert worker.failure() is None
    finally:
        worker.stop()
        verifier.close()
        queue.close()
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("service", ["reward-worker", "reward"])
def test_a_process_whose_consumer_group_vanished_exits(service, redis_url, tmp_path, wait_for):
    k = StreamKeys(RUN)
    stream, ready = {"reward-worker": (k.swe, "reward worker w for run"),
                     "reward": (k.swe_results, "reward service for run")}[service]
    cfg = RunConfig.model_validate({"run": RUN, "queue": {"type": "redis", "url": redis_url}, "reward": {
        "slow_lane": {"kinds": ["math"], "service_workers": 0, "poll_s": 0.1}}})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    argv = {"reward-worker": ["--worker-id", "w"], "reward": ["--port", "0"]}[service]
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", service, "--config", str(path), *argv],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: ready in log.read_text(), 60, f"{service} to start")  # its consumer group exists
        client.delete(stream)  # the group goes with it: every lease now fails with a ResponseError
        assert proc.wait(timeout=60) == 1
        assert "stopped: ResponseError" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()
