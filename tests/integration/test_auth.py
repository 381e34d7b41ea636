"""Auth on every gRPC service: without the run's token a call is UNAUTHENTICATED, whatever its
shape (unary, server-streaming); the health check and reflection stay open (Kubernetes probes,
grpcurl, which asks reflection first; neither reveals run data); clients built with the token get
through; a token set but empty is refused, never read as "no auth"."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from relayrl.config import LearnerConfig, PublishConfig, RunConfig
from relayrl.learner.server import serve as serve_learner
from relayrl.learner.trainer import Learner
from relayrl.replay import MemoryReplayQueue
from relayrl.reward.server import serve as serve_reward
from relayrl.rpc import TOKEN_ENV, channel
from relayrl.weights.source import GrpcWeightSource
from relayrl.wire import learner_pb2, learner_pb2_grpc, reward_pb2, reward_pb2_grpc

TOKEN = "s3cret-token"


@pytest.fixture
def servers(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = RunConfig(learner=LearnerConfig(weights=PublishConfig(wire_dtype="float32")))
    queue = MemoryReplayQueue()
    learner = Learner(cfg, queue, str(tiny_model_dir), tmp_path)
    learner.publish()
    lserver, lport = serve_learner(learner, 0)
    reward = serve_reward(cfg.reward, queue, cfg.run, port=0)
    monkeypatch.delenv(TOKEN_ENV)  # the servers keep the token; clients below choose theirs
    yield {"learner": f"127.0.0.1:{lport}", "reward": reward.address}
    lserver.stop(0)
    reward.stop(grace=0)


def calls():
    yield "learner", lambda ch: learner_pb2_grpc.LearnerServiceStub(ch).GetStatus(learner_pb2.LearnerStatusRequest(), timeout=5)
    yield "learner", lambda ch: list(learner_pb2_grpc.LearnerServiceStub(ch).GetWeights(
        learner_pb2.GetWeightsRequest(version=-1), timeout=5))
    yield "reward", lambda ch: reward_pb2_grpc.RewardServiceStub(ch).GetStatus(reward_pb2.RewardStatusRequest(), timeout=5)
    yield "reward", lambda ch: reward_pb2_grpc.RewardServiceStub(ch).Score(
        reward_pb2.ScoreRequest(kind="math", response="1", reference="1"), timeout=5)


def listed_services(ch) -> list[str]:
    """The services reflection lists (a bidirectional stream)."""
    replies = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    return [s.name for r in replies for s in r.list_services_response.service]


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_calls_without_the_token_are_unauthenticated(servers, token):
    for name, call in calls():
        with channel(servers[name], token=token) as ch:  # None: the environment's, which is unset
            with pytest.raises(grpc.RpcError) as info:
                call(ch)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert "token" in info.value.details()


def test_calls_with_the_token_succeed_and_health_and_reflection_need_none(servers):
    for name, call in calls():
        with channel(servers[name], token=TOKEN) as ch:
            call(ch)
    for name, service in (("learner", "relayrl.v1.LearnerService"), ("reward", "relayrl.v1.RewardService")):
        with channel(servers[name]) as ch:  # no token
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert service in listed_services(ch)


def test_a_token_set_but_empty_is_refused_on_both_sides(monkeypatch):
    from relayrl.preflight import StartupError
    from relayrl.rpc import start_server

    monkeypatch.setenv(TOKEN_ENV, "")
    with pytest.raises(StartupError, match="set but empty"):
        start_server(0, [])
    with pytest.raises(StartupError, match="set but empty"):
        channel("127.0.0.1:1")


def test_weight_client_sends_the_token_from_the_environment(servers, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    source = GrpcWeightSource(servers["learner"])
    version, state, _ = source.fetch(-1)
    assert version == 0 and state
    source.close()
