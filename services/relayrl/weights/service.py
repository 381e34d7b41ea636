"""The weight protocol of `LearnerService`: one servicer over a store, one reader of its stream.

`WeightServicer` answers `GetLatestVersion` and `GetWeights` for whoever holds a `WeightStore`:
the learner (whose servicer adds only `GetStatus`, learner/server.py) and a relay (relay.py, which
passes a `before_read` hook that pulls a newer version from upstream before a read is answered;
a transient failure of that hook is answered UNAVAILABLE, so the reader retries instead of seeing
UNKNOWN). `GetWeights` streams a version in `chunk_bytes` pieces, each with its offset and the
total; `reassemble` is the one reader of such a stream (the gRPC weight source and a relay's
upstream pull) and raises `IncompleteWeights` when the stream ends short or out of order. Every
answer carries the version's learner epoch, so a reader never takes one lineage's version for
another's.

Answers: asking for the newest version (-1) before any is held is UNAVAILABLE (come back later),
as `GetLatestVersion` is then; a version that is not held (evicted or never published) is
NOT_FOUND; a version below -1 is INVALID_ARGUMENT.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import grpc

from relayrl.retry import is_transient
from relayrl.weights import IncompleteWeights
from relayrl.weights.store import Published, WeightStore
from relayrl.wire import learner_pb2, learner_pb2_grpc

SERVICE_NAME = learner_pb2.DESCRIPTOR.services_by_name["LearnerService"].full_name


class WeightServicer(learner_pb2_grpc.LearnerServiceServicer):
    """Serves `store` over the weight methods; `bytes_sent` counts the payload bytes streamed.
    `before_read(version)` runs before each lookup (-1 for the newest)."""

    def __init__(self, store: WeightStore, chunk_bytes: int,
                 before_read: Callable[[int], None] | None = None) -> None:
        self.store, self.chunk_bytes = store, chunk_bytes
        self.before_read = before_read or (lambda version: None)
        self.bytes_sent = 0
        self._lock = threading.Lock()

    def _before_read(self, version: int, context) -> None:
        try:
            self.before_read(version)
        except Exception as exc:  # fault-tolerance boundary: a relay's upstream is away mid-pull
            if not is_transient(exc):
                raise
            context.abort(grpc.StatusCode.UNAVAILABLE, f"upstream weights unavailable: {exc}")

    def GetLatestVersion(self, request, context):
        self._before_read(-1, context)
        item = self.store.get()
        if item is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no version published yet")
        return learner_pb2.VersionInfo(version=item.version, total_bytes=len(item.payload),
                                       wire_dtype=item.wire_dtype, epoch=item.epoch)

    def GetWeights(self, request, context):
        if request.version < -1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"version must be >= -1, got {request.version}")
        self._before_read(request.version, context)
        item = self.store.get(request.version)
        if item is None and request.version == -1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no version published yet")
        if item is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"version {request.version} is not available (newest here is "
                          f"{self.store.newest_version()}; older versions are evicted)")
        total = len(item.payload)
        for offset, data in self.store.chunks(item, self.chunk_bytes):
            with self._lock:  # counted before the chunk leaves: a reader that has it all sees it counted
                self.bytes_sent += len(data)
            yield learner_pb2.WeightChunk(version=item.version, offset=offset, total_bytes=total, data=data,
                                          epoch=item.epoch)

    def GetStatus(self, request, context):
        """A store's status is its newest version (the learner's servicer answers with its counters)."""
        return learner_pb2.LearnerStatus(version=self.store.newest_version(), epoch=self.store.epoch)


def reassemble(chunks: Iterable[learner_pb2.WeightChunk]) -> Published:
    """The version a `GetWeights` stream carries (its wire dtype "": the stream does not say);
    IncompleteWeights when it ends short or a chunk is out of order."""
    parts: list[bytes] = []
    version, epoch, total, size = None, "", -1, 0
    for chunk in chunks:
        if chunk.offset != size:
            raise IncompleteWeights(f"weight chunk at offset {chunk.offset}, expected {size}")
        version, epoch, total = chunk.version, chunk.epoch, chunk.total_bytes
        parts.append(chunk.data)
        size += len(chunk.data)
    if version is None or size != total:
        raise IncompleteWeights(f"incomplete weights: {size} of {max(total, 0)} bytes received")
    return Published(version, b"".join(parts), "", epoch)


def serve(servicer: WeightServicer, port: int, host: str = "127.0.0.1", workers: int = 8) -> tuple[grpc.Server, int]:
    """Start a gRPC server with `servicer` as `LearnerService` (health and reflection included);
    returns the server and its bound port."""
    from relayrl.rpc import start_server

    server, bound, _ = start_server(port, [(learner_pb2_grpc.add_LearnerServiceServicer_to_server, servicer,
                                            SERVICE_NAME)], host=host, workers=workers)
    return server, bound
