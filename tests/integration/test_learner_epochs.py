"""Restart is resume, and every start is a new epoch: a learner started again over its output
continues from its newest checkpoint with no flag, as a new lineage. The weight relay behind it
drops the dead lineage's versions (whose numbers are higher) and serves the new one at once; an
actor behind the relay goes back to the new lineage's weights; the groups the dead lineage's
weights made are dropped as `epoch`, those of the new one are trained.

Real parts: Redis, the tiny model's learner and engine, the learner's and the relay's gRPC
servers, a reward service scoring with math-verify.
"""

from __future__ import annotations

import time

import grpc
import pytest
import torch

from relayrl.config import (
    CheckpointConfig,
    LearnerConfig,
    PublishConfig,
    RolloutConfig,
    RunConfig,
    SamplingConfig,
)
from relayrl.learner.server import serve as serve_learner
from relayrl.learner.trainer import Learner
from relayrl.replay import RedisReplayQueue
from relayrl.reward.client import InProcessRewardClient
from relayrl.reward.service import RewardService
from relayrl.rollout.actor import Actor
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights.relay import WeightRelay
from relayrl.weights.relay import serve as serve_relay
from relayrl.weights.source import GrpcWeightSource
from relayrl.wire import common_pb2
from tests.integration.test_resume import groups

CFG = RunConfig(run="lineage", learner=LearnerConfig(
    batch_groups=2, max_staleness=3, checkpoint=CheckpointConfig(every=1), weights=PublishConfig(wire_dtype="float32")),
    rollout=RolloutConfig(prompts_per_batch=1, sampling=SamplingConfig(group_size=2, max_new_tokens=4)))


def step_without_checkpoint(learner: Learner) -> None:
    """A step that publishes a version no checkpoint holds (a crash will undo it)."""
    batch = learner.collect()
    learner.train_step([g for _, g in batch])
    learner.step += 1
    learner.version += 1
    learner.publish()


def generated_group(queue: RedisReplayQueue, actor: Actor, seen: int, timeout_s: float = 60) -> common_pb2.Group:
    """Generate one group with `actor` and wait until the reward service has written it."""
    assert actor.step() == 1
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        mine = [g for g in map(common_pb2.Group.FromString, queue.recent(actor.keys.groups, 100))
                if g.actor_id == actor.actor_id]
        if len(mine) > seen:
            return mine[0]  # newest first
        time.sleep(0.05)
    raise TimeoutError("the reward service wrote no group")


def test_a_relay_and_an_actor_behind_a_restarted_learner_serve_the_new_lineage(tiny_model_dir, tmp_path, redis_url):
    out = tmp_path / "out"
    first = Learner(CFG, RedisReplayQueue(redis_url), str(tiny_model_dir), out)
    for g in groups(6):
        first.queue.put(first.keys.groups, g.SerializeToString())
    server, port = serve_learner(first, 0)
    first.run(steps=1)  # checkpoint step-1: version 1
    step_without_checkpoint(first)
    step_without_checkpoint(first)  # versions 2 and 3 exist only in this process

    relay = WeightRelay(f"127.0.0.1:{port}", poll_s=3600)  # no polling: every read pulls what it needs
    relay_server, relay_port = serve_relay(relay, 0)
    queue = RedisReplayQueue(redis_url)
    reward = RewardService(CFG.reward, queue, CFG.run)
    actor = Actor(CFG, "actor-r", TransformersEngine(str(tiny_model_dir)), queue,
                  GrpcWeightSource(f"127.0.0.1:{relay_port}"), InProcessRewardClient(reward))
    try:
        old_group = generated_group(queue, actor, seen=0)
        assert (actor.engine.version, actor.epoch) == (3, first.epoch)
        assert {s.epoch for s in old_group.samples} == {first.epoch}

        server.stop(grace=0)  # the learner dies; the same command starts it again, no flag
        second = Learner(CFG, RedisReplayQueue(redis_url), str(tiny_model_dir), out)
        assert (second.step, second.version) == (1, 1) and second.epoch != first.epoch
        server, _ = serve_learner(second, port)
        second.publish()

        # once it reaches the restarted learner (its channel reconnects with backoff), the relay
        # serves the new lineage's version 1, though it held a version 3
        deadline = time.monotonic() + 60
        while relay.upstream_latest() != (1, second.epoch):
            assert time.monotonic() < deadline, "the relay never reached the restarted learner"
            time.sleep(0.2)
        fetched = GrpcWeightSource(f"127.0.0.1:{relay_port}").fetch(-1)
        assert (fetched.version, fetched.epoch) == (1, second.epoch)
        expected = second.policy.model.state_dict()
        assert all(torch.equal(t, expected[name]) for name, t in fetched.state.items())
        with pytest.raises(grpc.RpcError) as gone:
            GrpcWeightSource(f"127.0.0.1:{relay_port}").fetch(3)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND  # the dead lineage's versions are dropped

        # the actor goes back to the new lineage and marks what it makes with it
        new_group = generated_group(queue, actor, seen=1)
        assert (actor.engine.version, actor.epoch) == (1, second.epoch)
        assert {s.epoch for s in new_group.samples} == {second.epoch}
        assert second.intake.drop_reason(old_group, second.version) == "epoch"
        assert second.intake.drop_reason(new_group, second.version) is None
    finally:
        server.stop(grace=0)
        relay_server.stop(grace=0)
        relay.close()
        reward.close(drain=False)
