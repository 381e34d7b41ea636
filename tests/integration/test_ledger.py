"""The run's accounting (`relayrl.ledger.account`) read through the queue's read-only views."""

from __future__ import annotations

import json

from relayrl.ledger import account
from relayrl.replay import RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.wire import common_pb2


def test_every_admitted_prompt_is_trained_dropped_waiting_or_reported_lost(tmp_path, redis_url):
    keys = StreamKeys("acct")
    q = RedisReplayQueue(redis_url)
    q.ensure_group(keys.prompts, StreamKeys.ACTORS)
    q.ensure_group(keys.groups, StreamKeys.LEARNER)
    for k in range(6):
        q.put_once(keys.prompts, common_pb2.Prompt(prompt_id=f"acct-p{k}").SerializeToString(), k)
    done = q.lease(keys.prompts, StreamKeys.ACTORS, "a", 4)  # p0..p3 generated, p4 and p5 still waiting
    q.ack(keys.prompts, StreamKeys.ACTORS, [e.id for e in done])
    q.put(keys.groups, common_pb2.Group(group_id="acct-p3").SerializeToString())  # scored, not yet trained
    ckpt = tmp_path / "checkpoints" / "step-000001"
    ckpt.mkdir(parents=True)
    (ckpt / "relayrl.json").write_text(json.dumps({"trained": ["acct-p0", "acct-p1", "acct-p0"],
                                                   "dropped": {"acct-p1": "stale"}}))
    ledger = account(redis_url, "acct", tmp_path)
    assert ledger.admitted == 6
    assert ledger.waiting_prompts == {"acct-p4", "acct-p5"} and ledger.waiting_groups == {"acct-p3"}
    assert ledger.lost("acct") == ["acct-p2"]
    assert sorted(ledger.duplicated) == ["acct-p0", "acct-p1"]
    assert ledger.summary("acct")["lost"] == 1
    q.close()
