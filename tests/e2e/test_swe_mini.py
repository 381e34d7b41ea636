"""configs/swe-mini.yaml trains: every reward a real test run, no group lost or trained twice, and
no prompt generated twice although every group waits for its rewards longer than the prompts' lease.

The whole pipeline as a user runs it: `scripts/swe_cold_start.py` cold-starts the tiny model on the
config (it learns to write a diff that applies to any task), then `relayrl train`'s launcher runs
the reward service (SWE verifier, slow lane with one worker loop running one job at a time), the
learner and an actor, on the test's Redis. Groups of 8 samples: a group waits for 8 test runs one
after another, 2.0-7.8 s here and 1.9 s or more on a machine where one sandboxed test run takes 0.24 s
(CI's: a 4-sample group there waited 0.98 s, not longer than a 1 s lease). The lease is 0.5 s:
shorter than any group's wait, renewed every 0.17 s. Afterwards, from Redis and the learner's checkpoint:
the ledger, the slow lane's jobs and results (each result says whether pytest ran), and the
actors' regeneration counter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from relayrl.config import RunConfig
from relayrl.ledger import account
from relayrl.local import run_local
from relayrl.replay.keys import StreamKeys
from relayrl.wire import common_pb2

ROOT = Path(__file__).resolve().parents[2]
RUN, LEASE_S, STEPS, BATCH, GROUP = "swe-mini-ci", 0.5, 4, 2, 8


def ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


@pytest.mark.slow
def test_swe_mini_trains_with_real_test_runs_and_no_regeneration(redis_url, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the config's task path is relative to the repository, as for a user
    cfg = RunConfig.load(ROOT / "configs" / "swe-mini.yaml")
    cfg.model.path = tmp_path / "model"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "swe_cold_start.py"), str(ROOT / "configs" / "swe-mini.yaml"),
                    str(cfg.model.path)], check=True, capture_output=True, timeout=900)
    cfg = RunConfig.model_validate({
        **cfg.model_dump(mode="json"), "run": RUN, "queue": {"type": "redis", "url": redis_url, "lease_idle_s": LEASE_S},
        "rollout": {**cfg.rollout.model_dump(mode="json"),
                    "sampling": {**cfg.rollout.sampling.model_dump(mode="json"), "group_size": GROUP}},
        "learner": {**cfg.learner.model_dump(mode="json"), "steps": STEPS, "batch_groups": BATCH,
                    "checkpoint": {"every": 1}},
        "reward": {**cfg.reward.model_dump(mode="json"),
                   "slow_lane": {**cfg.reward.slow_lane.model_dump(mode="json"), "concurrency": 1}}})
    assert cfg.rollout.sampling.group_size == GROUP
    summary = run_local(cfg, tmp_path / "out", progress=False)
    assert summary["steps"] == STEPS and summary["groups_trained"] == STEPS * BATCH

    ledger = account(redis_url, RUN, tmp_path / "out")
    assert ledger.lost(RUN) == [] and ledger.duplicated == [], ledger.summary(RUN)
    assert ledger.regenerations == 0, ledger.summary(RUN)
    assert set(ledger.dropped.values()) <= {"stale"}  # nothing dead-lettered, no infrastructure error

    r, k = redis.Redis.from_url(redis_url), StreamKeys(RUN)
    jobs = {json.loads(f[b"d"])["job_id"]: ms(i) for i, f in r.xrange(k.swe)}
    results = [(json.loads(f[b"d"]), ms(i)) for i, f in r.xrange(k.swe_results)]
    judged = {res["job_id"] for res, _ in results}
    assert len(judged) == len(results) and judged <= set(jobs)  # each sample judged once
    # a job without a result belongs to a group still being scored when the run ended
    assert {j.rsplit("/", 1)[0] for j in set(jobs) - judged} <= ledger.waiting_prompts
    for res, _ in results:  # every reward a real test run: the patch applied and pytest ran the task's tests
        details = res["score"]["details"]
        assert details["apply"]["ok"] and isinstance(details["exit_code"], int), details
        assert details["fail_to_pass"] and res["score"]["outcome"] in ("pass", "fail")
    done = {res["job_id"]: t for res, t in results}
    for group in ledger.trained:
        ids = [f"{group}/{i}" for i in range(GROUP)]
        assert set(ids) <= set(done), f"{group}: a trained group without its test runs"
        waited_s = (max(done[j] for j in ids) - min(jobs[j] for j in ids)) / 1000
        assert waited_s > LEASE_S, f"{group} waited {waited_s} s for its rewards, not longer than the lease"
    written = [common_pb2.Group.FromString(f[b"d"]) for _, f in r.xrange(k.groups)]
    assert all(g.prompt_deliveries == 1 for g in written)  # the groups not yet trained were generated once too
