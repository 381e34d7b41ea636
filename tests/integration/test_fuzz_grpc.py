"""Every gRPC method of every relayrl service, fuzzed with hypothesis over real servers.

Three kinds of input: random bytes (mostly not a protobuf at all), random but well-typed messages
built from the method's descriptor (huge and empty strings, extreme numbers, NaN, deep nesting),
and valid messages with invalid UTF-8 spliced into a string field. The promise under test: no
call crashes a servicer (no UNKNOWN or INTERNAL status, which is what an uncaught exception or a
parser failure gives), malformed input is INVALID_ARGUMENT with a message, and every service
still answers a valid call afterwards.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayrl.config import LearnerConfig, PublishConfig, RolloutConfig, RunConfig, SamplingConfig
from relayrl.learner.server import serve as serve_learner
from relayrl.learner.trainer import Learner
from relayrl.replay import MemoryReplayQueue
from relayrl.reward.client import InProcessRewardClient
from relayrl.reward.server import serve as serve_reward
from relayrl.rollout.actor import Actor
from relayrl.rollout.engine import TransformersEngine
from relayrl.rollout.server import serve as serve_rollout
from relayrl.rpc import channel
from relayrl.weights.source import InProcessWeightSource
from relayrl.wire import learner_pb2, reward_pb2, rollout_pb2

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}
SERVICES = [("learner", learner_pb2.DESCRIPTOR.services_by_name["LearnerService"]),
            ("reward", reward_pb2.DESCRIPTOR.services_by_name["RewardService"]),
            ("rollout", rollout_pb2.DESCRIPTOR.services_by_name["RolloutService"])]
METHODS = [(name, svc, m) for name, svc in SERVICES for m in svc.methods]
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="module")
def addresses(tiny_model_dir, tmp_path_factory):
    cfg = RunConfig(learner=LearnerConfig(weights=PublishConfig(wire_dtype="float32")),
                    rollout=RolloutConfig(sampling=SamplingConfig(max_new_tokens=4)))
    queue = MemoryReplayQueue()
    learner = Learner(cfg, queue, str(tiny_model_dir), tmp_path_factory.mktemp("learner"))
    learner.publish()
    lserver, lport = serve_learner(learner, 0)
    reward = serve_reward(cfg.reward, queue, cfg.run, port=0)
    actor = Actor(cfg, "fuzz", TransformersEngine(str(tiny_model_dir)), queue, InProcessWeightSource(learner.store),
                  InProcessRewardClient(reward.service))
    rserver, rport = serve_rollout(actor, 0)
    yield {"learner": f"127.0.0.1:{lport}", "reward": reward.address, "rollout": f"127.0.0.1:{rport}"}
    lserver.stop(0)
    rserver.stop(0)
    reward.stop(grace=0)


def scalar(field) -> st.SearchStrategy:
    t = field.type
    if t == F.TYPE_STRING:
        return st.one_of(st.text(max_size=40), st.text(alphabet="0123456789?<>/\\{}", max_size=12),
                         st.just("9" * 100_000))
    if t == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return st.integers(-(2**31), 2**31 - 1)
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1)
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_FLOAT:
        return st.floats(width=32)
    if t == F.TYPE_DOUBLE:
        return st.floats()
    if t == F.TYPE_ENUM:
        return st.integers(-3, 8)  # proto3 enums are open: unknown values must be handled too
    raise AssertionError(f"unhandled field type {t}")


def messages(desc, depth: int = 0) -> st.SearchStrategy:
    """Random instances of the message `desc`, nested messages to a small depth."""
    cls = message_factory.GetMessageClass(desc)
    parts = {}
    for f in desc.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            parts[f.name] = st.dictionaries(scalar(key), scalar(value), max_size=3)
        elif f.message_type is not None:
            if depth >= 3:
                continue
            sub = messages(f.message_type, depth + 1)
            parts[f.name] = st.lists(sub, max_size=3) if f.is_repeated else sub
        else:
            parts[f.name] = st.lists(scalar(f), max_size=5) if f.is_repeated else scalar(f)

    def build(values: dict):
        msg = cls()
        for name, value in values.items():
            field = getattr(msg, name)
            if isinstance(value, dict):
                field.update(value)
            elif isinstance(value, list):
                if value and hasattr(value[0], "SerializeToString"):
                    for v in value:
                        field.add().CopyFrom(v)
                else:
                    field.extend(value)
            elif hasattr(value, "SerializeToString"):
                field.CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return st.fixed_dictionaries({}, optional=parts).map(build)


def call_raw(address: str, service, method, payload: bytes) -> grpc.StatusCode:
    path = f"/{service.full_name}/{method.name}"
    with channel(address) as ch:
        kind = ch.unary_stream if method.server_streaming else ch.unary_unary
        call = kind(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            result = call(payload, timeout=60)
            if method.server_streaming:
                list(result)
            return grpc.StatusCode.OK
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                assert err.details(), "INVALID_ARGUMENT must say what was wrong"
            return err.code()


def invalid_utf8(desc) -> bytes | None:
    """A message whose first string field holds bytes that are not UTF-8 (field tag, length, bytes)."""
    for f in desc.fields:
        if f.type == F.TYPE_STRING and not f.is_repeated:
            return bytes([(f.number << 3) | 2, 3]) + b"\xff\xfe\xc3"
    return None


@pytest.mark.parametrize("name, service, method", METHODS, ids=[f"{s.name}.{m.name}" for _, s, m in METHODS])
def test_fuzzed_calls_never_crash_a_service(addresses, name, service, method):
    address = addresses[name]

    @FUZZ
    @given(payload=st.one_of(st.binary(max_size=512), messages(method.input_type).map(lambda m: m.SerializeToString())))
    def fuzz(payload):
        code = call_raw(address, service, method, payload)
        assert code in ALLOWED, f"{method.full_name} answered {code} to {payload[:80]!r}"

    fuzz()
    bad = invalid_utf8(method.input_type)
    if bad is not None:
        assert call_raw(address, service, method, bad) == grpc.StatusCode.INVALID_ARGUMENT
    # the service still answers a valid call
    status = next(m for m in service.methods if m.name == "GetStatus")
    assert call_raw(address, service, status, b"") == grpc.StatusCode.OK


def test_truncated_protobuf_is_invalid_argument_with_the_reason(addresses):
    svc = reward_pb2.DESCRIPTOR.services_by_name["RewardService"]
    method = svc.methods_by_name["SubmitGroup"]
    with channel(addresses["reward"]) as ch:
        call = ch.unary_unary(f"/{svc.full_name}/SubmitGroup", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as info:
            call(b"\x0a\x20abc", timeout=10)  # field 1, length 32, three bytes
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in info.value.details() and method.name in info.value.details()
