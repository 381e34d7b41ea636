"""What every weight source raises for "come back later": a version not held is `VersionUnavailable`
(in-process, bulk) or UNAVAILABLE (gRPC, before anything is published), a transfer cut short is
`IncompleteWeights`; all are transient under the one retry policy, and keep the builtin bases
(LookupError, OSError) their first callers caught."""

import socket
import threading

import grpc
import pytest
import torch

from relayrl.retry import is_transient
from relayrl.weights import IncompleteWeights, VersionUnavailable, make_weight_source, service
from relayrl.weights.bulk import HEADER, BulkWeightSource
from relayrl.weights.service import reassemble
from relayrl.weights.source import GrpcWeightSource, InProcessWeightSource
from relayrl.weights.store import WeightStore
from relayrl.wire import learner_pb2


def state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(16, 8, generator=g)}


def test_in_process_an_evicted_or_unpublished_version_is_transient():
    store = WeightStore(keep=1)
    source = InProcessWeightSource(store)
    with pytest.raises(VersionUnavailable) as err:
        source.fetch(-1)  # nothing published yet
    assert isinstance(err.value, LookupError) and is_transient(err.value)
    store.publish(1, state(1), "float32")
    store.publish(2, state(2), "float32")
    with pytest.raises(VersionUnavailable):
        source.fetch(1)  # keep=1: evicted
    assert source.latest_version() == 2 and source.fetch(-1)[0] == 2


def test_grpc_before_any_publish_is_unavailable_and_a_missing_version_not_found():
    store = WeightStore(keep=2)
    server, port = service.serve(service.WeightServicer(store, chunk_bytes=64), 0)
    source = make_weight_source(f"127.0.0.1:{port}")
    try:
        assert isinstance(source, GrpcWeightSource)
        for call in (source.latest_version, lambda: source.fetch(-1)):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and is_transient(err.value)
        store.publish(3, state(3), "float32")
        with pytest.raises(grpc.RpcError) as err:
            source.fetch(7)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "newest here is 3" in err.value.details()
        version, got, _ = source.fetch(-1)
        assert version == 3 and torch.equal(got["w"], state(3)["w"])
    finally:
        source.close()
        server.stop(grace=0)


def test_a_bulk_stream_cut_short_is_incomplete_weights():
    """A peer that announces 1000 payload bytes and closes after 10 (it died mid-send)."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve_one():
        conn, _ = srv.accept()
        with conn:
            conn.recv(8)
            conn.sendall(HEADER.pack(4, 1000, b"float32", b"e1") + b"x" * 10)

    threading.Thread(target=serve_one, daemon=True).start()
    try:
        with pytest.raises(IncompleteWeights, match="after 10 of 1000 bytes") as err:
            BulkWeightSource(f"bulk://127.0.0.1:{srv.getsockname()[1]}").fetch(-1)
        assert isinstance(err.value, OSError) and is_transient(err.value)
    finally:
        srv.close()


def chunk(offset: int, data: bytes, total: int, version: int = 1) -> learner_pb2.WeightChunk:
    return learner_pb2.WeightChunk(version=version, offset=offset, total_bytes=total, data=data)


def test_reassemble_takes_a_whole_stream_and_refuses_a_short_or_disordered_one():
    got = reassemble([chunk(0, b"abc", 5), chunk(3, b"de", 5)])
    assert (got.version, got.payload) == (1, b"abcde")
    for stream, message in [([chunk(0, b"abc", 5)], "3 of 5 bytes"),
                            ([chunk(0, b"abc", 5), chunk(4, b"e", 5)], "offset 4, expected 3"),
                            ([], "0 of 0 bytes")]:
        with pytest.raises(IncompleteWeights, match=message) as err:
            reassemble(stream)
        assert is_transient(err.value)
