"""The reward service over real gRPC on loopback, writing to a real replay queue (in memory and
Redis): scored groups reach the groups stream with the leased prompt acknowledged, duplicates and
malformed requests are answered correctly, and health and reflection work for standard clients."""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from relayrl.config import RewardConfig, RewardWeights
from relayrl.replay import MemoryReplayQueue, RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.reward.client import GrpcRewardClient, InProcessRewardClient
from relayrl.reward.errors import Saturated
from relayrl.reward.server import SERVICE_NAME, serve
from relayrl.wire import common_pb2, reward_pb2, reward_pb2_grpc

RUN = "test"
CFG = RewardConfig(workers=1, timeout_s=5.0, weights=RewardWeights(accuracy=1.0, format=0.5))


def make_group(group_id: str, texts: list[str], reference: str = "5", kind: str = "math",
               entry_id: str = "") -> common_pb2.Group:
    prompt = common_pb2.Prompt(prompt_id=group_id, text="2+3?", kind=kind, reference=reference)
    samples = [common_pb2.Sample(sample_id=f"{group_id}/{i}", text=t) for i, t in enumerate(texts)]
    return common_pb2.Group(group_id=group_id, prompt=prompt, samples=samples, actor_id="a1",
                            prompt_entry_id=entry_id)


def wait_for_group(queue, timeout_s: float = 10.0) -> common_pb2.Group:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = queue.lease(StreamKeys(RUN).groups, StreamKeys.LEARNER, "l1", 1, block_s=0.2)
        if entries:
            group = common_pb2.Group()
            group.ParseFromString(entries[0].payload)
            return group
    pytest.fail("no scored group appeared on the groups stream")


@pytest.fixture
def running():
    queue = MemoryReplayQueue()
    server = serve(CFG, queue, RUN, port=0)
    yield server, queue
    server.stop(grace=1.0)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_scored_group_is_written_and_prompt_acked(backend, request):
    queue = MemoryReplayQueue() if backend == "memory" else RedisReplayQueue(request.getfixturevalue("redis_url"))
    k = StreamKeys(RUN)
    queue.ensure_group(k.prompts, StreamKeys.ACTORS)
    queue.ensure_group(k.groups, StreamKeys.LEARNER)
    entry_id = queue.put(k.prompts, b"prompt")
    assert [e.id for e in queue.lease(k.prompts, StreamKeys.ACTORS, "a1", 1)] == [entry_id]
    server = serve(CFG, queue, RUN, port=0)
    client = GrpcRewardClient(server.address)
    try:
        texts = ["<think>2+3</think><answer>5</answer>", "<think>hm</think><answer>6</answer>",
                 "it is \\boxed{\\frac{10}{2}}", "5<bos>5"]
        group = make_group("g1", texts, entry_id=entry_id)
        assert client.submit(group) is True
        assert client.submit(group) is False  # in flight or just written: a duplicate either way
        scored = wait_for_group(queue)
        assert scored.group_id == "g1" and scored.actor_id == "a1" and len(scored.samples) == 4
        outcomes = [s.outcome for s in scored.scores]
        assert outcomes == [common_pb2.OUTCOME_PASS, common_pb2.OUTCOME_FAIL, common_pb2.OUTCOME_PASS,
                            common_pb2.OUTCOME_FAIL]
        assert [s.reward for s in scored.scores] == [1.5, 0.5, 1.0, 0.0]
        assert dict(scored.scores[0].components) == {"accuracy": 1.0, "format": 1.0}
        assert queue.pending(k.prompts, StreamKeys.ACTORS) == 0  # the leased prompt is acknowledged
        assert client.submit(group) is False  # recently written
        deadline = time.monotonic() + 5
        while (status := client.status()).groups_in_flight and time.monotonic() < deadline:
            time.sleep(0.01)  # the group is on the stream a moment before it leaves the in-flight set
        assert (status.groups_in_flight, status.groups_scored, status.samples_scored) == (0, 1, 4)
        assert list(status.kinds) == ["code", "math", "swe"]
    finally:
        client.close()
        server.stop(grace=1.0)
        queue.close()


def test_malformed_requests_are_invalid_argument(running):
    server, _ = running
    with grpc.insecure_channel(server.address) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        cases = {"group_id is empty": make_group("", ["5"]),
                 "has no samples": make_group("g2", []),
                 "unknown task kind 'chess'": make_group("g3", ["5"], kind="chess"),
                 "not a stream entry id": make_group("g4", ["5"], entry_id="nope")}
        for message, group in cases.items():
            with pytest.raises(grpc.RpcError) as err:
                stub.SubmitGroup(reward_pb2.SubmitGroupRequest(group=group), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.Score(reward_pb2.ScoreRequest(kind="", response="5", reference="5"), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The service kept running: a good request still works, and the client maps the code back.
    client = GrpcRewardClient(server.address)
    try:
        assert client.score("math", "\\boxed{0.5}", "\\frac{1}{2}").outcome == "pass"
        with pytest.raises(ValueError, match="has no samples"):
            client.submit(make_group("g5", []))
    finally:
        client.close()


def test_health_serving_and_reflection_lists_the_service(running):
    server, _ = running
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE_NAME):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=5)
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert SERVICE_NAME == "relayrl.v1.RewardService"
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


def test_saturation_and_infra_error_reach_the_learner_as_such():
    queue = MemoryReplayQueue()
    queue.ensure_group(StreamKeys(RUN).groups, StreamKeys.LEARNER)
    cfg = RewardConfig(workers=1, timeout_s=0.5, max_attempts=1)
    server = serve(cfg, queue, RUN, port=0, max_in_flight=1)
    client = GrpcRewardClient(server.address)
    try:
        for pid in server.service.verifiers["math"].workers.pids():
            os.kill(pid, signal.SIGSTOP)  # a worker the host does not run: the infrastructure's fault
        assert client.submit(make_group("slow", ["\\boxed{\\sqrt{25}}"])) is True
        with pytest.raises(Saturated, match="max_in_flight=1"):
            client.submit(make_group("next", ["5"]))
        scored = wait_for_group(queue)
        assert scored.group_id == "slow"
        assert [s.outcome for s in scored.scores] == [common_pb2.OUTCOME_INFRA_ERROR]
        assert "exceeded" in scored.scores[0].details
        assert client.submit(make_group("next", ["5"])) is True  # room again
        assert wait_for_group(queue).scores[0].outcome == common_pb2.OUTCOME_PASS
    finally:
        client.close()
        server.stop(grace=1.0)


def test_in_process_client_matches_the_grpc_one(running):
    server, queue = running
    queue.ensure_group(StreamKeys(RUN).groups, StreamKeys.LEARNER)
    client = InProcessRewardClient(server.service)
    assert client.submit(make_group("local", ["\\boxed{5}"])) is True
    assert client.submit(make_group("local", ["\\boxed{5}"])) is False
    assert wait_for_group(queue).scores[0].outcome == common_pb2.OUTCOME_PASS
    assert client.score("math", "<think>a</think><answer>4</answer>", "5").reward == 0.5
