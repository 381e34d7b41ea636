"""The slow lane on a real Redis: leases, renewals, a worker process SIGKILLed mid-job, dead letters.

Jobs are math samples routed through the slow lane (`reward.slow_lane.kinds: [math]`) with an
emulated constant latency, so a job is reliably "running" when a worker is killed; the dead-letter
test uses real SWE jobs in a sandbox whose interpreter does not exist (an infrastructure error
every time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import yaml

from relayrl.config import RewardConfig, RunConfig
from relayrl.replay import RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.reward.service import RewardService
from relayrl.reward.worker import Job, Worker
from relayrl.wire import common_pb2

RUN = "lane"
ROOT = Path(__file__).resolve().parents[2]


def reward_cfg(**slow) -> RewardConfig:
    lane = {"kinds": ["math"], "service_workers": 0, "lease_s": 1.0, "poll_s": 0.1, "concurrency": 4, **slow}
    return RewardConfig.model_validate({"slow_lane": lane})


def make_group(group_id: str, texts: list[str], kind="math", reference="5", entry_id="") -> common_pb2.Group:
    return common_pb2.Group(group_id=group_id, prompt_entry_id=entry_id,
                            prompt=common_pb2.Prompt(prompt_id="p", text="2+3=", kind=kind, reference=reference),
                            samples=[common_pb2.Sample(sample_id=f"{group_id}/{i}", text=t) for i, t in enumerate(texts)])


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def groups_written(queue: RedisReplayQueue) -> list[common_pb2.Group]:
    raw = redis.Redis.from_url(queue.url).xrange(StreamKeys(RUN).groups)
    return [common_pb2.Group.FromString(fields[b"d"]) for _, fields in raw]


def results(url: str) -> list[dict]:
    return [json.loads(f[b"d"]) for _, f in redis.Redis.from_url(url).xrange(StreamKeys(RUN).swe_results)]


def worker_process(tmp_path, url: str, worker_id: str, delay_s: float) -> subprocess.Popen:
    cfg = RunConfig.model_validate({"run": RUN, "queue": {"type": "redis", "url": url}, "reward": {"slow_lane": {
        "kinds": ["math"], "lease_s": 1.0, "poll_s": 0.1, "concurrency": 4,
        "emulate_latency": {"median_s": delay_s, "p99_s": delay_s}}}})
    path = tmp_path / f"{worker_id}.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", "reward-worker", "--config", str(path),
                             "--worker-id", worker_id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_worker_killed_mid_job_is_released_and_scored_once(redis_url, tmp_path):
    queue = RedisReplayQueue(redis_url)
    k = StreamKeys(RUN)
    queue.ensure_group(k.prompts, StreamKeys.ACTORS)
    entry = queue.put(k.prompts, b"prompt")
    queue.lease(k.prompts, StreamKeys.ACTORS, "actor-0", 1)
    service = RewardService(reward_cfg(), queue, RUN)
    doomed = worker_process(tmp_path, redis_url, "doomed", delay_s=120.0)
    survivor = None
    try:
        assert service.submit(make_group("g1", ["\\boxed{5}", "\\boxed{6}"], entry_id=entry))
        # both jobs leased by the doomed worker, which is now sleeping through its (emulated) job
        wait_for(lambda: queue.pending(k.swe, StreamKeys.REWARD_WORKERS) == 2, 60, "the doomed worker's leases")
        time.sleep(1.5)  # longer than lease_s: its renewals keep the jobs from being taken over
        assert queue.pending(k.swe, StreamKeys.REWARD_WORKERS) == 2 and results(redis_url) == []
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        survivor = worker_process(tmp_path, redis_url, "survivor", delay_s=0.1)
        (group,) = wait_for(lambda: groups_written(queue), 60, "the scored group")
        assert group.group_id == "g1"
        assert [s.outcome for s in group.scores] == [common_pb2.OUTCOME_PASS, common_pb2.OUTCOME_FAIL]
        got = results(redis_url)
        assert sorted(r["job_id"] for r in got) == ["g1/0", "g1/1"]  # each job scored exactly once
        assert {(r["score"]["details"]["worker"], r["score"]["details"]["deliveries"]) for r in got} == {("survivor", 2)}
        assert queue.pending(k.swe, StreamKeys.REWARD_WORKERS) == 0
        assert queue.pending(k.prompts, StreamKeys.ACTORS) == 0  # the prompt acked with the group
        time.sleep(0.5)
        assert len(groups_written(queue)) == 1
    finally:
        for proc in (doomed, survivor):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        service.close()


def test_long_jobs_keep_their_lease_while_running(redis_url):
    """Jobs four times longer than the lease, two workers competing: renewals keep each job with
    its worker, so nothing runs twice."""
    queue = RedisReplayQueue(redis_url)
    cfg = reward_cfg(lease_s=0.5, emulate_latency={"median_s": 2.0, "p99_s": 2.0})
    service = RewardService(cfg, queue, RUN)
    workers = [Worker(cfg, queue, RUN, f"w{i}", verifiers=service.verifiers) for i in range(2)]
    for worker in workers:
        worker.start()
    try:
        for g in range(3):
            assert service.submit(make_group(f"g{g}", ["\\boxed{5}", "\\boxed{4}"]))
        wait_for(lambda: len(groups_written(queue)) == 3, 30, "three scored groups")
        got = results(redis_url)
        assert len(got) == 6 and {r["score"]["details"]["deliveries"] for r in got} == {1}
    finally:
        for worker in workers:
            worker.stop()
        service.close()


def test_job_failing_every_time_is_dead_lettered_and_its_sample_an_infra_error(redis_url):
    queue = RedisReplayQueue(redis_url)
    cfg = RewardConfig.model_validate({"sandbox": {"python": "/no/such/python"},
                                       "slow_lane": {"kinds": ["swe"], "service_workers": 1, "lease_s": 0.3,
                                                     "poll_s": 0.1, "max_deliveries": 2}})
    service = RewardService(cfg, queue, RUN)
    task = ROOT / "examples" / "swe-mini" / "roman-numerals"
    try:
        assert service.submit(make_group("g-dead", [f"```diff\n{(task / 'gold.patch').read_text()}```"] * 2,
                                         kind="swe", reference=str(task)))
        (group,) = wait_for(lambda: groups_written(queue), 30, "the group with dead-lettered samples")
        assert [s.outcome for s in group.scores] == [common_pb2.OUTCOME_INFRA_ERROR] * 2
        assert all(json.loads(s.details)["dead_letter"] for s in group.scores)
        dead = [json.loads(f[b"d"]) for _, f in redis.Redis.from_url(redis_url).xrange(StreamKeys(RUN).dead)]
        assert sorted(d["job"]["job_id"] for d in dead) == ["g-dead/0", "g-dead/1"]
        assert {d["deliveries"] for d in dead} == {2} and all("no verdict" in d["reason"] for d in dead)
        assert queue.pending(StreamKeys(RUN).swe, StreamKeys.REWARD_WORKERS) == 0
    finally:
        service.close()


def test_job_whose_workers_keep_dying_is_dead_lettered_without_running(redis_url):
    queue = RedisReplayQueue(redis_url)
    k = StreamKeys(RUN)
    queue.ensure_group(k.swe, StreamKeys.REWARD_WORKERS)
    queue.ensure_group(k.swe_results, StreamKeys.REWARD_SERVICE)
    job = Job("g/0", "g", 0, "math", "\\boxed{5}", "5", k.swe_results, time.time())
    queue.put(k.swe, job.dumps())
    for ghost in ("ghost-1", "ghost-2"):  # two workers lease it and die
        assert len(queue.lease(k.swe, StreamKeys.REWARD_WORKERS, ghost, 1, reclaim_idle_s=0.2)) == 1
        time.sleep(0.3)
    worker = Worker(reward_cfg(max_deliveries=2, lease_s=0.2), queue, RUN, "third")
    worker.start()
    try:
        (result,) = wait_for(lambda: results(redis_url), 20, "the dead-letter result")
        assert result["score"]["outcome"] == "infra_error" and result["score"]["details"]["deliveries"] == 3
        assert queue.length(k.dead) == 1 and queue.pending(k.swe, StreamKeys.REWARD_WORKERS) == 0
        assert worker.jobs_done == 0  # never run: a job that kills its workers is not tried again
    finally:
        worker.stop()
