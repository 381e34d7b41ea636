"""Every generated group and sample is accounted for when rewards go through the slow lane.

A real run (`relayrl train`'s launcher: reward service with slow-lane workers, learner, actors as
processes) on the test's Redis, with heavy-tailed emulated reward latency so groups finish out of
order and some grow stale. Afterwards, from Redis and the learner's last checkpoint: every group
the reward service wrote was trained, dropped (stale, ...) or never read; every sample of a
written group has a score; every slow-lane job has exactly one result or is still queued.
"""

from __future__ import annotations

import json

import pytest
import redis

from relayrl.config import RunConfig
from relayrl.learner import checkpoint as ckpt
from relayrl.local import run_local
from relayrl.replay.keys import StreamKeys
from relayrl.wire import common_pb2


@pytest.mark.slow
def test_every_group_and_sample_is_accounted_for(redis_url, tmp_path):
    cfg = RunConfig.model_validate({
        "run": "acct", "model": {"tiny": {"max_position_embeddings": 64}},
        "queue": {"type": "redis", "url": redis_url},
        "rollout": {"num_actors": 2, "prompts_per_batch": 4, "sampling": {"group_size": 4, "max_new_tokens": 4}},
        "reward": {"slow_lane": {"kinds": ["math"], "service_workers": 1, "concurrency": 64, "poll_s": 0.2,
                                 "emulate_latency": {"median_s": 0.3, "p99_s": 4.0}}},
        "learner": {"batch_groups": 4, "max_staleness": 1, "steps": 8, "checkpoint": {"every": 1}}})
    run_local(cfg, tmp_path / "out", progress=False)
    r, k = redis.Redis.from_url(redis_url), StreamKeys("acct")
    state = ckpt.read_state(ckpt.latest(tmp_path / "out" / "checkpoints"))
    trained, dropped = set(state["trained"]), state["dropped"]
    assert len(trained) == 8 * 4 and not trained & set(dropped)
    # groups still on the stream: written by the reward service, not yet consumed by the learner
    # (consumed ones are removed once acknowledged)
    unread = [common_pb2.Group.FromString(f[b"d"]) for _, f in r.xrange(k.groups)]
    for g in unread:
        assert len(g.scores) == len(g.samples) == 4
        assert all(s.outcome in (common_pb2.OUTCOME_PASS, common_pb2.OUTCOME_FAIL) for s in g.scores)
    scored = trained | set(dropped) | {g.group_id for g in unread}
    assert len(scored) == len(trained) + len(dropped) + len(unread)  # no group in two places
    assert set(dropped.values()) <= {"stale", "infra_error", "zero_variance"}
    # prompts: each produced a group (acknowledged with it) or is still queued / being scored
    admitted = r.xinfo_stream(k.prompts)["entries-added"]  # acknowledged entries may have been trimmed
    info = {i["name"].decode(): i for i in r.xinfo_groups(k.prompts)}[StreamKeys.ACTORS]
    assert admitted == state["admitted"] == len(scored) + info["pending"] + (info["lag"] or 0)
    assert scored <= {f"acct-p{i}" for i in range(admitted)}
    # samples: every sample of every scored group has exactly one slow-lane result
    results = [json.loads(f[b"d"])["job_id"] for _, f in r.xrange(k.swe_results)]
    assert len(results) == len(set(results))
    assert {f"{g}/{i}" for g in scored for i in range(4)} <= set(results)
