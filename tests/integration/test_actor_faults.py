"""The actor loop under the one retry policy (`relayrl.retry.is_transient`): a saturated or closed
reward service and a weight version that is not published yet are waited out, with backoff, and
the actor goes on once they are back; a bug (weights that do not fit the model) ends the actor.

Real parts: the tiny model's transformers engine, a real learner publishing over its real gRPC
weight service, a real reward service scoring with math-verify, an in-memory replay queue."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
import torch

from relayrl.config import LearnerConfig, PublishConfig, RewardConfig, RolloutConfig, RunConfig, SamplingConfig
from relayrl.learner.server import serve as serve_learner
from relayrl.learner.trainer import Learner
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.reward.client import InProcessRewardClient
from relayrl.reward.service import RewardService
from relayrl.rollout.actor import Actor
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights.source import GrpcWeightSource, InProcessWeightSource
from relayrl.wire import common_pb2

CFG = RunConfig(learner=LearnerConfig(batch_groups=2, weights=PublishConfig(wire_dtype="float32")),
                rollout=RolloutConfig(prompts_per_batch=1, sampling=SamplingConfig(group_size=2, max_new_tokens=4)))


class Running:
    """`actor.run()` on a thread, keeping what it raised."""

    def __init__(self, actor: Actor) -> None:
        self.actor, self.error = actor, None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.actor.run()
        except Exception as exc:
            self.error = exc

    def stop(self) -> None:
        self.actor.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def wait_until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def warnings_with(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.name == "relayrl.actor" and r.levelno == logging.WARNING)


def groups_from(queue, actor_id: str) -> list[common_pb2.Group]:
    keys = StreamKeys(CFG.run)
    entries = queue.lease(keys.groups, StreamKeys.LEARNER, "l", count=100)
    return [g for g in (common_pb2.Group.FromString(e.payload) for e in entries) if g.actor_id == actor_id]


def slow_group(reward: RewardService) -> common_pb2.Group:
    """A math group that keeps the verifier busy until its deadline: its one worker is stopped,
    as a host too loaded to run it would (an infrastructure error at the deadline)."""
    for pid in reward.verifiers["math"].workers.pids():
        os.kill(pid, signal.SIGSTOP)
    prompt = common_pb2.Prompt(prompt_id="slow", text="2+3?", kind="math", reference="5")
    return common_pb2.Group(group_id="slow", prompt=prompt, actor_id="other",
                            samples=[common_pb2.Sample(sample_id="slow/0", text="\\boxed{\\sqrt{25}}")])


@pytest.fixture
def learner(tiny_model_dir, tmp_path):
    queue = MemoryReplayQueue()
    queue.ensure_group(StreamKeys(CFG.run).groups, StreamKeys.LEARNER)
    return Learner(CFG, queue, str(tiny_model_dir), tmp_path)


def test_a_saturated_reward_service_is_waited_out(learner, tiny_model_dir, caplog):
    caplog.set_level(logging.WARNING, "relayrl.actor")
    reward = RewardService(RewardConfig(workers=1, timeout_s=2.0, max_attempts=1), learner.queue, CFG.run,
                           max_in_flight=1)
    actor = Actor(CFG, "actor-s", TransformersEngine(str(tiny_model_dir)), learner.queue,
                  InProcessWeightSource(learner.store), InProcessRewardClient(reward))
    learner.publish()
    learner.admit()
    assert reward.submit(slow_group(reward))  # the one slot is taken for about two seconds
    running = Running(actor)
    try:
        wait_until(lambda: warnings_with(caplog, "max_in_flight=1") >= 1)
        wait_until(lambda: bool(groups_from(learner.queue, "actor-s")) or running.error is not None)
        assert running.error is None and running.thread.is_alive()
    finally:
        running.stop()
        reward.close(drain=False)
    assert running.error is None


def test_a_closed_reward_service_is_retried_with_backoff_until_stopped(learner, tiny_model_dir, caplog):
    caplog.set_level(logging.WARNING, "relayrl.actor")
    reward = RewardService(CFG.reward, learner.queue, CFG.run)
    actor = Actor(CFG, "actor-c", TransformersEngine(str(tiny_model_dir)), learner.queue,
                  InProcessWeightSource(learner.store), InProcessRewardClient(reward))
    learner.publish()
    learner.admit()
    reward.close()
    running = Running(actor)
    try:
        wait_until(lambda: warnings_with(caplog, "shutting down") >= 2 or running.error is not None)
        assert running.error is None and running.thread.is_alive()
    finally:
        running.stop()
    assert running.error is None


def test_an_announced_version_the_learner_has_not_published_yet_is_waited_for(learner, tiny_model_dir, caplog):
    """A restarted learner serves before it publishes while Redis still announces the old version:
    its weight service answers UNAVAILABLE, which the actor retries until the version is there."""
    caplog.set_level(logging.WARNING, "relayrl.actor")
    server, port = serve_learner(learner, 0)
    reward = RewardService(CFG.reward, learner.queue, CFG.run)
    actor = Actor(CFG, "actor-w", TransformersEngine(str(tiny_model_dir)), learner.queue,
                  GrpcWeightSource(f"127.0.0.1:{port}"), InProcessRewardClient(reward))
    learner.version = 1  # resumed from a checkpoint of version 1, which its previous life announced
    learner.queue.set_value(learner.keys.version, "1")
    learner.admit()
    running = Running(actor)
    try:
        wait_until(lambda: warnings_with(caplog, "no version published yet") >= 1 or running.error is not None)
        assert running.error is None
        learner.publish()
        wait_until(lambda: bool(groups_from(learner.queue, "actor-w")) or running.error is not None)
        assert running.error is None and actor.engine.version == 1
    finally:
        running.stop()
        server.stop(0)
        reward.close(drain=False)


def test_weights_that_do_not_fit_the_model_end_the_actor(learner, tiny_model_dir):
    reward = RewardService(CFG.reward, learner.queue, CFG.run)
    actor = Actor(CFG, "actor-b", TransformersEngine(str(tiny_model_dir)), learner.queue,
                  InProcessWeightSource(learner.store), InProcessRewardClient(reward))
    learner.store.publish(5, {"no.such.weight": torch.zeros(3)}, "float32")
    learner.queue.set_value(learner.keys.version, "5")
    learner.admit()
    running = Running(actor)
    running.thread.join(timeout=60)
    try:
        assert not running.thread.is_alive(), "a bug must end the actor, not be retried"
        assert isinstance(running.error, ValueError) and "do not fit the model" in str(running.error)
    finally:
        running.stop()
        reward.close(drain=False)
