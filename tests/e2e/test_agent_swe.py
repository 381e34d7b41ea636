"""configs/swe-agent.yaml trains: the tiny model plays agent episodes on examples/swe-mini in real
sandboxes, every episode's diff is graded by a real test run in a fresh sandbox on the slow lane,
and the ledger shows no episode lost or trained twice, with no prompt generated twice: the actor
renews a prompt's lease while its episodes run, the reward service while their diffs are graded.

The whole pipeline as a user runs it: `scripts/agent_cold_start.py` cold-starts the tiny model on
the config (it learns one episode: append to NOTES with bash, then submit), then `relayrl train`'s
launcher runs the reward service, the learner and an actor on the test's Redis.
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
from tests.integration.agent_helpers import sandbox_processes

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "swe-agent.yaml"
RUN, LEASE_S, STEPS, BATCH, GROUP = "swe-agent-ci", 2.0, 4, 2, 4


@pytest.mark.slow
def test_swe_agent_trains_with_every_episode_graded_in_a_fresh_sandbox(redis_url, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the config's task path is relative to the repository, as for a user
    cfg = RunConfig.load(CONFIG)
    cfg.model.path = tmp_path / "model"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "agent_cold_start.py"), str(CONFIG), str(cfg.model.path)],
                   check=True, capture_output=True, timeout=900)
    cfg = RunConfig.model_validate({
        **cfg.model_dump(mode="json"), "run": RUN, "queue": {"type": "redis", "url": redis_url, "lease_idle_s": LEASE_S},
        "learner": {**cfg.learner.model_dump(mode="json"), "steps": STEPS, "batch_groups": BATCH,
                    "checkpoint": {"every": 1}}})
    assert cfg.rollout.sampling.group_size == GROUP and cfg.task.agent is not None
    summary = run_local(cfg, tmp_path / "out", progress=False)
    assert summary["steps"] == STEPS and summary["groups_trained"] == STEPS * BATCH
    assert sandbox_processes() == [], "an episode's workspace outlived the run"

    ledger = account(redis_url, RUN, tmp_path / "out")
    assert ledger.lost(RUN) == [] and ledger.duplicated == [], ledger.summary(RUN)
    assert ledger.regenerations == 0, ledger.summary(RUN)
    assert set(ledger.dropped.values()) <= {"stale"}  # no infrastructure error, nothing dead-lettered

    r, k = redis.Redis.from_url(redis_url), StreamKeys(RUN)
    jobs = {job["job_id"]: job for job in (json.loads(f[b"d"]) for _, f in r.xrange(k.swe))}
    results = {res["job_id"]: res for res in (json.loads(f[b"d"]) for _, f in r.xrange(k.swe_results))}
    episodes = [f"{gid}/{i}" for gid in ledger.trained for i in range(GROUP)]
    assert len(episodes) == STEPS * BATCH * GROUP
    assert set(episodes) <= set(results), "a trained episode was not graded"  # no episode flagged, each judged once
    assert len(results) == len(set(results))
    with_diff = [e for e in episodes if jobs[e]["response"]]
    for e in with_diff:  # a real test run in a fresh sandbox: the diff applied to the pristine snapshot, pytest ran
        details = results[e]["score"]["details"]
        assert details["apply"]["ok"] and isinstance(details["exit_code"], int), details
        assert details["fail_to_pass"] and "NOTES" in details["patched_paths"]
    assert len(with_diff) >= len(episodes) * 3 // 4, f"only {len(with_diff)} of {len(episodes)} episodes left a diff"
    # the groups the learner has not trimmed yet: multi-turn samples, observations masked out
    left = [common_pb2.Group.FromString(f[b"d"]) for _, f in r.xrange(k.groups)]
    samples = [s for g in left for s in g.samples]
    assert samples and all(s.turns >= 1 and len(s.loss_mask) == len(s.completion_token_ids) for s in samples)
    assert sum(s.finish_reason == "submit" and 0 in s.loss_mask for s in samples) >= len(samples) * 3 // 4
