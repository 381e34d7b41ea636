"""The per-node weight relay: N actors behind it cost the learner one payload per version."""

import threading
import time

import grpc
import pytest
import torch

from relayrl.weights import service
from relayrl.weights.relay import WeightRelay, serve
from relayrl.weights.source import GrpcWeightSource
from relayrl.weights.store import WeightStore
from relayrl.wire import learner_pb2, learner_pb2_grpc


@pytest.fixture
def origin():
    """A real gRPC server speaking the learner's weight protocol over a WeightStore."""
    store = WeightStore(keep=2)
    servicer = service.WeightServicer(store, chunk_bytes=1 << 14)
    server, port = service.serve(servicer, 0)
    yield store, servicer, f"127.0.0.1:{port}"
    server.stop(grace=0)


@pytest.fixture
def relay(origin):
    relay = WeightRelay(origin[2], chunk_bytes=1 << 14, poll_s=3600)  # no polling: reads must pull
    server, port = serve(relay, 0)
    yield relay, f"127.0.0.1:{port}"
    server.stop(grace=0)
    relay.close()


def state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(64, 128, generator=g), "b.bias": torch.randn(300, generator=g)}


def test_actors_behind_a_relay_get_every_version_and_the_learner_sends_it_once(origin, relay):
    store, servicer, _ = origin
    relay_obj, relay_addr = relay
    payload = store.publish(1, state(1), "float32").payload
    actors = [GrpcWeightSource(relay_addr) for _ in range(4)]
    for a in actors:
        version, got, _ = a.fetch(-1)
        assert version == 1 and torch.equal(got["a.weight"], state(1)["a.weight"])
    assert servicer.bytes_sent == len(payload)  # four actors, one payload from the learner
    assert relay_obj.servicer.bytes_sent == 4 * len(payload)

    payload2 = store.publish(2, state(2), "float32").payload
    late = GrpcWeightSource(relay_addr)  # a late joiner asks for the newest: it gets 2, not the held 1
    assert late.latest_version() == 2
    version, got, _ = late.fetch(-1)
    assert version == 2 and torch.equal(got["b.bias"], state(2)["b.bias"])
    for a in actors:
        assert a.fetch(-1)[0] == 2
    assert servicer.bytes_sent == len(payload) + len(payload2)
    assert relay_obj.pulls == 2


def test_relays_chain_and_bad_requests_are_invalid_argument(origin, relay):
    store, servicer, _ = origin
    _, relay_addr = relay
    second = WeightRelay(relay_addr, poll_s=0.05).start()
    server, port = serve(second, 0)
    try:
        store.publish(3, state(3), "bfloat16")
        version, got, _ = GrpcWeightSource(f"127.0.0.1:{port}").fetch(-1)
        assert version == 3 and got["a.weight"].dtype == torch.bfloat16
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = learner_pb2_grpc.LearnerServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                list(stub.GetWeights(learner_pb2.GetWeightsRequest(version=-5)))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "version" in err.value.details()
            assert stub.GetLatestVersion(learner_pb2.GetLatestVersionRequest()).wire_dtype == "bfloat16"
    finally:
        server.stop(grace=0)
        second.close()


def test_a_relay_before_any_version_answers_unavailable(relay):
    _, relay_addr = relay
    with pytest.raises(grpc.RpcError) as err:
        GrpcWeightSource(relay_addr).latest_version()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_actors_read_a_relay_over_the_bulk_port(origin, relay):
    import socket

    from relayrl.weights import make_weight_source
    from relayrl.weights.bulk import HEADER, BulkWeightSource
    from relayrl.weights.relay import serve_bulk

    store, servicer, _ = origin
    relay_obj, _ = relay
    bulk = serve_bulk(relay_obj)
    try:
        store.publish(1, state(1), "float32")
        src = make_weight_source(f"bulk://127.0.0.1:{bulk.port}")
        assert isinstance(src, BulkWeightSource) and src.latest_version() == 1
        version, got, _ = src.fetch(-1)
        assert version == 1 and torch.equal(got["a.weight"], state(1)["a.weight"])
        payload2 = store.publish(2, state(2), "float32").payload
        assert [BulkWeightSource(f"127.0.0.1:{bulk.port}").fetch(-1)[0] for _ in range(3)] == [2, 2, 2]
        assert src.fetch(-1)[1]["b.bias"].equal(state(2)["b.bias"])  # the reused buffer holds the new bytes
        assert relay_obj.pulls == 2 and bulk.bytes_sent == 4 * len(payload2) + len(store.get(1).payload)
        with pytest.raises(LookupError):
            src.fetch(7)  # never published
        with socket.create_connection(("127.0.0.1", bulk.port)) as s:  # a truncated request
            s.sendall(b"\x00\x01")
            s.shutdown(socket.SHUT_WR)
            assert HEADER.unpack(s.recv(HEADER.size, socket.MSG_WAITALL))[0] == -1
        with socket.create_connection(("127.0.0.1", bulk.port)) as s:
            s.sendall((-9).to_bytes(8, "big", signed=True))
            assert HEADER.unpack(s.recv(HEADER.size, socket.MSG_WAITALL))[0] == -1
        assert src.fetch(-1)[0] == 2  # the server survived both
    finally:
        bulk.close()


def test_bulk_bytes_sent_counts_a_payload_before_its_reader_has_it():
    """Once a reader holds a whole payload the server has counted it (the counter is not bumped
    after `sendall` returns, when the reader may already be done)."""
    from relayrl.weights.bulk import BulkServer, BulkWeightSource

    store = WeightStore()
    size = len(store.publish(1, {"w": torch.zeros(1000)}, "float32").payload)
    bulk = BulkServer(store)
    try:
        src = BulkWeightSource(f"127.0.0.1:{bulk.port}")
        for i in range(1, 201):
            src.fetch_payload(-1)
            assert bulk.bytes_sent == i * size, f"read {i}: counted {bulk.bytes_sent}, want {i * size}"
    finally:
        bulk.close()


def test_an_upstream_over_its_deadline_is_unavailable_at_the_relay_then_served(origin):
    """A relay whose pull from upstream fails transiently answers UNAVAILABLE (retry later), not
    UNKNOWN; the next read, with upstream back, gets the version."""
    from relayrl.retry import is_transient

    store, servicer, address = origin
    store.publish(1, state(1), "float32")
    slow = threading.Event()
    servicer.before_read = lambda version: slow.is_set() and time.sleep(1.0)
    relay = WeightRelay(address, poll_s=3600, timeout_s=0.3)
    server, port = serve(relay, 0)
    try:
        slow.set()
        with pytest.raises(grpc.RpcError) as err:
            GrpcWeightSource(f"127.0.0.1:{port}").fetch(-1)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "upstream" in err.value.details()
        assert is_transient(err.value)
        slow.clear()
        version, got, _ = GrpcWeightSource(f"127.0.0.1:{port}").fetch(-1)
        assert version == 1 and torch.equal(got["a.weight"], state(1)["a.weight"])
    finally:
        server.stop(grace=0)
        relay.close()
