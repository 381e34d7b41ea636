"""The relay's bulk path: a version's payload over a plain TCP stream, at socket speed.

Python gRPC moves a large payload at a fraction of what the loopback or the NIC can do: every
chunk is copied by protobuf, by the C core and into HTTP/2 frames on both sides (see
docs/benchmarks.md). The announcement, the version numbers and the learner-to-relay hop stay on
gRPC; a relay additionally serves the bytes it holds to its node's actors over this protocol, as
docs/design.md allows a fast path to replace the gRPC transfer:

    request   8 bytes: signed big-endian version wanted (-1: newest; -2: newest's header only)
    reply     8 bytes version (-1: not available), 8 bytes payload length,
              16 bytes wire dtype (ASCII, NUL-padded), 16 bytes learner epoch (ASCII,
              NUL-padded), then the payload (safetensors bytes)

One request per connection. A request that is not 8 bytes, or names a version below -2, is
answered with version -1 and the connection closed; the server never parses anything else from
the client. There is no authentication or encryption: bind it to the node's loopback or a private
network, like the learner's weight port.

The server's `bytes_sent` counts a payload before its bytes leave (and takes the count back if
the send fails), so a reader that has received a payload always finds it counted.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading

from relayrl.weights import IncompleteWeights, VersionUnavailable
from relayrl.weights.source import Fetched, WeightSource
from relayrl.weights.store import WeightStore, deserialize

HEADER = struct.Struct(">qq16s16s")
REQUEST = struct.Struct(">q")
HEADER_ONLY = -2


class BulkServer(socketserver.ThreadingTCPServer):
    """Serves a `WeightStore`'s payloads; `before_read(version)` runs before each lookup (a relay
    uses it to pull a newer version first)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, store: WeightStore, host: str = "127.0.0.1", port: int = 0, before_read=None) -> None:
        self.store = store
        self.before_read = before_read or (lambda version: None)
        self.bytes_sent = 0
        self._lock = threading.Lock()
        super().__init__((host, port), _Handler)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, name="bulk-weights", daemon=True)
        self._thread.start()

    def count(self, n: int) -> None:
        """Add `n` payload bytes to `bytes_sent` (negative: take a failed send back)."""
        with self._lock:
            self.bytes_sent += n

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: BulkServer = self.server  # type: ignore[assignment]
        sock: socket.socket = self.request
        raw = _recv_exact(sock, REQUEST.size, allow_short=True)
        version = REQUEST.unpack(raw)[0] if raw is not None else -3
        if version < HEADER_ONLY:
            sock.sendall(HEADER.pack(-1, 0, b"bad request", b""))
            return
        server.before_read(-1 if version == HEADER_ONLY else version)
        item = server.store.get(-1 if version == HEADER_ONLY else version)
        if item is None:
            sock.sendall(HEADER.pack(-1, 0, b"", b""))
            return
        sock.sendall(HEADER.pack(item.version, len(item.payload), item.wire_dtype.encode(), item.epoch.encode()))
        if version != HEADER_ONLY:
            server.count(len(item.payload))  # before the bytes leave: the reader may finish first
            try:
                sock.sendall(item.payload)
            except OSError:
                server.count(-len(item.payload))  # not delivered: take the count back
                raise


def _recv_exact(sock: socket.socket, n: int, allow_short: bool = False, into: bytearray | None = None):
    """Exactly n bytes (into `into` when it is large enough, reusing it), or None if the peer closed
    before sending any with allow_short."""
    buf = into if into is not None and len(into) >= n else bytearray(n)
    view = memoryview(buf)[:n]
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got, socket.MSG_WAITALL)
        if k == 0:
            if allow_short:
                return None
            raise IncompleteWeights(f"connection closed after {got} of {n} bytes")
        got += k
    return buf if len(buf) == n else view


class BulkWeightSource(WeightSource):
    """An actor's weight source reading a relay's bulk port (`bulk://host:port`). It keeps its
    receive buffer between versions (their size rarely changes): allocating and faulting in a
    fresh buffer costs about as much as the transfer itself."""

    def __init__(self, address: str, timeout_s: float = 120.0) -> None:
        host, _, port = address.removeprefix("bulk://").rpartition(":")
        self.address, self.timeout_s = (host, int(port)), timeout_s
        self.bytes_received = 0
        self._buf: bytearray | None = None

    def _request(self, version: int) -> tuple[int, str, str, bytearray | None]:
        with socket.create_connection(self.address, timeout=self.timeout_s) as sock:
            sock.sendall(REQUEST.pack(version))
            got, total, dtype, epoch = HEADER.unpack(_recv_exact(sock, HEADER.size))
            if got < 0:
                return -1, "", "", None
            payload = None
            if version != HEADER_ONLY:
                if self._buf is None or len(self._buf) < total:
                    self._buf = bytearray(total)
                payload = _recv_exact(sock, total, into=self._buf)
        return got, dtype.rstrip(b"\0").decode(), epoch.rstrip(b"\0").decode(), payload

    def latest_version(self) -> int:
        return self._request(HEADER_ONLY)[0]

    def fetch_payload(self, version: int = -1) -> tuple[int, str, str, memoryview | bytearray]:
        """(version, wire dtype, epoch, payload); the payload is a view of the reused buffer,
        valid until the next fetch."""
        got, dtype, epoch, payload = self._request(version)
        if got < 0 or payload is None:
            raise VersionUnavailable(f"version {version} is not available at {self.address[0]}:{self.address[1]}")
        self.bytes_received += len(payload)
        return got, dtype, epoch, payload

    def fetch(self, version: int = -1) -> Fetched:
        got, _, epoch, payload = self.fetch_payload(version)
        return Fetched(got, deserialize(bytes(payload)), epoch)

