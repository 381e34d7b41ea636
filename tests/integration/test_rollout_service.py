"""The actor's gRPC RolloutService: Generate with logprobs, clear errors, health and reflection;
and the actor loop end to end in-process: lease a prompt, follow the newest version, submit a
group that the real reward service scores onto the groups stream."""

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from relayrl.config import LearnerConfig, PublishConfig, RunConfig
from relayrl.learner.trainer import Learner
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.reward.client import InProcessRewardClient
from relayrl.reward.service import RewardService
from relayrl.rollout.actor import Actor
from relayrl.rollout.engine import TransformersEngine
from relayrl.rollout.server import serve
from relayrl.rpc import channel
from relayrl.weights.source import InProcessWeightSource
from relayrl.wire import common_pb2, rollout_pb2, rollout_pb2_grpc


@pytest.fixture
def stack(tiny_model_dir, tmp_path):
    cfg = RunConfig(learner=LearnerConfig(batch_groups=2, weights=PublishConfig(wire_dtype="float32")))
    queue = MemoryReplayQueue()
    learner = Learner(cfg, queue, str(tiny_model_dir), tmp_path)
    reward = RewardService(cfg.reward, queue, cfg.run)
    actor = Actor(cfg, "actor-t", TransformersEngine(str(tiny_model_dir)), queue, InProcessWeightSource(learner.store),
                  InProcessRewardClient(reward))
    server, port = serve(actor, 0)
    yield cfg, queue, learner, actor, f"127.0.0.1:{port}"
    server.stop(0)
    reward.close()


def test_generate_returns_n_samples_with_logprobs(stack):
    *_, address = stack
    with channel(address) as ch:
        stub = rollout_pb2_grpc.RolloutServiceStub(ch)
        reply = stub.Generate(rollout_pb2.GenerateRequest(prompt="31353?", n=3, max_new_tokens=4, seed=5), timeout=30)
        assert len(reply.samples) == 3
        for s in reply.samples:
            assert len(s.completion_token_ids) == len(s.logprobs) == len(s.versions) <= 4
        again = stub.Generate(rollout_pb2.GenerateRequest(prompt="31353?", n=3, max_new_tokens=4, seed=5), timeout=30)
        assert [list(s.completion_token_ids) for s in again.samples] == [list(s.completion_token_ids) for s in reply.samples]


@pytest.mark.parametrize("request_kwargs, message", [
    ({"prompt": "", "n": 1}, "prompt is empty"),
    ({"prompt": "1?", "n": 0}, "n must be in"),
    ({"prompt": "1?", "n": 1, "top_p": 1.5}, "top_p"),
    ({"prompt": "1?", "n": 1, "max_new_tokens": -3}, "max_new_tokens"),
])
def test_malformed_generate_is_invalid_argument(stack, request_kwargs, message):
    *_, address = stack
    with channel(address) as ch:
        stub = rollout_pb2_grpc.RolloutServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(rollout_pb2.GenerateRequest(**request_kwargs), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in info.value.details()
        assert stub.GetStatus(rollout_pb2.RolloutStatusRequest(), timeout=5).actor_id == "actor-t"


def test_health_and_reflection(stack):
    *_, address = stack
    with channel(address) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="relayrl.v1.RolloutService"),
                                                     timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                 timeout=5))
        assert "relayrl.v1.RolloutService" in {s.name for s in replies[0].list_services_response.service}


def test_actor_follows_newest_version_and_hands_groups_to_the_reward_service(stack):
    cfg, queue, learner, actor, _ = stack
    keys = StreamKeys(cfg.run)
    learner.version = 3
    learner.publish()  # announced at version 3: the actor must load it before generating
    learner.admit()
    assert actor.step() == cfg.rollout.prompts_per_batch
    assert actor.engine.version == 3
    want = cfg.rollout.prompts_per_batch
    entries = []
    for _ in range(200):
        entries += queue.lease(keys.groups, StreamKeys.LEARNER, "l", count=want)
        if len(entries) == want:
            break
        time.sleep(0.05)
    groups = [common_pb2.Group.FromString(e.payload) for e in entries]
    assert len(groups) == want
    for group in groups:
        assert len(group.samples) == len(group.scores) == cfg.rollout.sampling.group_size
        assert all(set(s.versions) == {3} for s in group.samples)
        assert all(sc.outcome in (common_pb2.OUTCOME_PASS, common_pb2.OUTCOME_FAIL) for sc in group.scores)
    # the reward service acknowledged each prompt in the transaction that stored its group
    assert queue.pending(keys.prompts, StreamKeys.ACTORS) == 0
