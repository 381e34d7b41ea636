"""The learner's gRPC service: weights round-trip bit-exact in chunks, health and reflection."""

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from relayrl.config import LearnerConfig, PublishConfig, RunConfig
from relayrl.learner.server import serve
from relayrl.learner.trainer import Learner
from relayrl.replay import MemoryReplayQueue
from relayrl.rpc import channel
from relayrl.weights.source import GrpcWeightSource
from relayrl.wire import learner_pb2, learner_pb2_grpc


@pytest.fixture
def learner(tiny_model_dir, tmp_path):
    cfg = RunConfig(learner=LearnerConfig(weights=PublishConfig(wire_dtype="float32", chunk_bytes=4096, keep_versions=2)))
    learner = Learner(cfg, MemoryReplayQueue(), str(tiny_model_dir), tmp_path)
    server, port = serve(learner, 0)
    yield learner, f"127.0.0.1:{port}"
    server.stop(0)


def test_weights_round_trip_bit_exact_in_many_chunks(learner):
    learner, address = learner
    learner.publish()
    source = GrpcWeightSource(address)
    version, state, _ = source.fetch(-1)
    expected = learner.policy.model.state_dict()
    assert version == 0
    assert set(state) == set(expected) - {"lm_head.weight"}  # tied: travels once
    for name, tensor in state.items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, expected[name]), name
    assert source.bytes_received > 100 * 4096  # it really came in many chunks
    source.close()


def test_bf16_wire_dtype_and_version_eviction(learner):
    learner, address = learner
    learner.cfg.learner.weights.wire_dtype = "bfloat16"
    for v in range(3):
        learner.version = v
        with torch.no_grad():
            next(learner.policy.model.parameters()).add_(1.0)
        learner.publish()
    source = GrpcWeightSource(address)
    assert source.latest_version() == 2
    version, state, _ = source.fetch(1)
    assert version == 1 and all(t.dtype == torch.bfloat16 for t in state.values())
    with pytest.raises(grpc.RpcError) as info:
        source.fetch(0)  # keep_versions=2: version 0 is gone
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        source.fetch(-5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    source.close()


def test_status_before_any_publish_is_unavailable_not_a_crash(learner):
    learner, address = learner
    with channel(address) as ch:
        stub = learner_pb2_grpc.LearnerServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetLatestVersion(learner_pb2.GetLatestVersionRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        status = stub.GetStatus(learner_pb2.LearnerStatusRequest(), timeout=5)
        assert status.step == 0 and not status.done


def test_health_and_reflection(learner):
    _, address = learner
    with channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "relayrl.v1.LearnerService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                 timeout=5))
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"relayrl.v1.LearnerService", "grpc.health.v1.Health"} <= names
