"""A per-node weight relay: one pull from upstream per version, served to every actor on the node.

N actors pulling the learner directly cost the learner N times the payload per version. A relay
speaks the learner's own weight protocol (`LearnerService.GetLatestVersion` / `GetWeights`), so an
actor points its weight source at the relay instead of the learner and nothing else changes. The
relay polls upstream for the newest version, pulls it once (as raw safetensors bytes, never
parsed), keeps the last few versions, and streams them to any number of local readers. Relays
chain: a relay's upstream may be another relay, so a fleet forms a tree and the learner's egress
per version is one payload per first-level relay, whatever the number of actors.

An actor asking for the newest version (-1) while the relay is still pulling a newer one than it
holds waits for that pull, so a late joiner loads the newest version first, as it would from the
learner. "Newer" includes another learner epoch: a learner that restarted resumes from its last
checkpoint, so its version numbers go back; the relay pulls the new lineage's version at once and
drops every version of the old one (`WeightStore.put`).

The relay serves bytes as it received them; it does not check what they contain (the learner's
payload is trusted as it is on the direct path), and it has no authentication of its own: run it
on the node's loopback or a private network, like the learner's weight port.

Besides gRPC a relay can serve its actors over a plain TCP stream (`weights/bulk.py`, actors use
`--learner bulk://host:port`): Python gRPC moves large payloads at a fraction of socket speed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import grpc

from relayrl.weights import service
from relayrl.weights.service import WeightServicer, reassemble
from relayrl.weights.store import Published, WeightStore
from relayrl.wire import learner_pb2, learner_pb2_grpc

log = logging.getLogger("relayrl.relay")


def pull_payload(stub, version: int = -1, timeout_s: float = 120.0) -> Published:
    """Pull one version's raw payload from a `LearnerService` (a learner or another relay)."""
    item = reassemble(stub.GetWeights(learner_pb2.GetWeightsRequest(version=version), timeout=timeout_s))
    info = stub.GetLatestVersion(learner_pb2.GetLatestVersionRequest(), timeout=timeout_s)
    same = (info.version, info.epoch) == (item.version, item.epoch)
    return replace(item, wire_dtype=info.wire_dtype if same else "")


class WeightRelay:
    """Follows an upstream `LearnerService` and re-serves its versions to local actors."""

    def __init__(self, upstream: str, chunk_bytes: int = 4 * 1024 * 1024, keep: int = 2,
                 poll_s: float = 0.5, timeout_s: float = 120.0) -> None:
        from relayrl.rpc import channel

        self.upstream = upstream
        self._channel = channel(upstream)
        self._stub = learner_pb2_grpc.LearnerServiceStub(self._channel)
        self.store = WeightStore(keep)
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.bytes_pulled = 0
        self.pulls = 0
        self._pull_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.servicer = WeightServicer(self.store, chunk_bytes, before_read=self._ensure)

    def upstream_latest(self) -> tuple[int, str]:
        """(version, epoch) of upstream's newest; (-1, "") while it has published nothing."""
        try:
            info = self._stub.GetLatestVersion(learner_pb2.GetLatestVersionRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:  # nothing published upstream yet
                return -1, ""
            raise
        return info.version, info.epoch

    def upstream_version(self) -> int:
        return self.upstream_latest()[0]

    def held_version(self) -> int:
        return self.store.newest_version()

    def sync(self) -> bool:
        """Pull the newest upstream version if it is newer than the one held, or of another
        epoch (the learner restarted: its versions went back); True if pulled. Concurrent callers
        share one pull (the lock), so a version is pulled once."""
        with self._pull_lock:
            newest, epoch = self.upstream_latest()
            if newest < 0 or (epoch == self.store.epoch and newest <= self.held_version()):
                return False
            item = pull_payload(self._stub, -1, self.timeout_s)
            if item.epoch != self.store.epoch:
                log.info("relay: upstream %s is a new learner epoch %s (was %s): its versions replace those held",
                         self.upstream, item.epoch or "-", self.store.epoch or "-")
            self.store.put(item)
            self.bytes_pulled += len(item.payload)
            self.pulls += 1
            log.info("relay holds version %d (%d bytes) from %s", item.version, len(item.payload), self.upstream)
            return True

    def _ensure(self, version: int) -> None:
        """Before answering a read: a request for the newest (or a version not held yet) waits for
        a pull of upstream's newest, so a late joiner never gets an older version than upstream's."""
        if version < 0 or self.store.get(version) is None:
            self.sync()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.sync()
            except (OSError, grpc.RpcError) as exc:  # fault-tolerance boundary: upstream restarting
                log.warning("relay: upstream %s: %s", self.upstream, exc)

    def start(self) -> WeightRelay:
        self._thread = threading.Thread(target=self._loop, name="weight-relay", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._channel.close()


def serve_bulk(relay: WeightRelay, port: int = 0, host: str = "127.0.0.1"):
    """Start the relay's bulk TCP server (`bulk://host:port` for actors); returns the `BulkServer`."""
    from relayrl.weights.bulk import BulkServer

    return BulkServer(relay.store, host, port, before_read=relay._ensure)


def serve(relay: WeightRelay, port: int, host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    """Start the relay's gRPC server (the learner's service name, health and reflection)."""
    return service.serve(relay.servicer, port, host, workers=16)


def main(upstream: str, port: int, host: str = "127.0.0.1", chunk_bytes: int = 4 * 1024 * 1024,
         poll_s: float = 0.5, bulk_port: int | None = None) -> None:
    """Entry of `relayrl serve relay`: runs until SIGTERM / SIGINT."""
    import signal

    relay = WeightRelay(upstream, chunk_bytes=chunk_bytes, poll_s=poll_s).start()
    server, bound = serve(relay, port, host)
    bulk = serve_bulk(relay, bulk_port, host) if bulk_port is not None else None
    if bulk is not None:
        log.info("bulk weights on bulk://%s:%d", host, bulk.port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("weight relay on %s:%d following %s", host, bound, upstream)
    while not stop.wait(1.0):
        pass
    server.stop(grace=1).wait()
    if bulk is not None:
        bulk.close()
    relay.close()
