"""The GPU fast path for weight versions: the learner broadcasts a version to each actor that asks,
over a process group of two (NCCL on GPUs; gloo on CPUs, which is how it is tested here).

The announcement and the versions stay what they are (Redis, the weight store); this replaces only
the gRPC pull of the bytes. Each actor opens a control connection to the learner's
`NcclWeightServer` (`nccl://host:port`) and gets a pair group of its own — learner rank 0, actor
rank 1, rendezvous over a TCPStore the learner opens for that pair — so an actor that joins late
asks for the newest version and gets it without stopping or regrouping the others, and an actor
that dies takes only its own group with it. The control protocol (one JSON object per line):

    actor -> {"op": "join", "token": T}        learner -> {"port": P, "backend": "nccl" | "gloo"}
    actor -> {"op": "latest"}                  learner -> {"version": V}            (-1: none yet)
    actor -> {"op": "fetch", "version": V}     learner -> {"version": V, "epoch": E, "wire_dtype": D,
                                                           "tensors": [[name, dtype, shape], ...]}
                                               then one broadcast per tensor, in that order

A fetch of a version the store does not hold is answered `{"version": -1}` (the actor raises
`VersionUnavailable` and retries). The learner broadcasts from the payload the store already holds
(the safetensors bytes published for the gRPC path): each tensor is viewed in place, copied to the
learner's device and broadcast, so the fast path needs no second copy of the model on the GPU and
no collective of the learner's own ranks. The actor receives into tensors on its device and hands
them to its engine's `load_weights` like any `WeightSource`.

A malformed request, a wrong token or a transfer that fails or times out ends that one session;
the server keeps serving. There is no encryption: bind the control port to a private network, as
the learner's weight port. Not measured here (no GPU): the NCCL backend itself, and NCCL's caveat
that communicators used concurrently on one device must not wait on each other (the pair's
broadcast only waits on an actor that is already receiving).
"""

from __future__ import annotations

import contextlib
import datetime
import hmac
import json
import logging
import socket
import threading

from relayrl.weights import IncompleteWeights, VersionUnavailable
from relayrl.weights.source import Fetched, WeightSource
from relayrl.weights.store import WeightStore, layout

log = logging.getLogger("relayrl.weights")


def default_backend() -> str:
    """nccl where CUDA is present, else gloo."""
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def pair_group(store, rank: int, backend: str, timeout_s: float):
    """A process group of two over `store` (rank 0 the learner, rank 1 the actor)."""
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    if backend == "gloo":
        return dist.ProcessGroupGloo(store, rank, 2, timeout)
    options = dist.ProcessGroupNCCL.Options()
    options._timeout = timeout
    return dist.ProcessGroupNCCL(store, rank, 2, options)


def broadcast(group, tensor) -> None:
    """Rank 0's `tensor` into rank 1's (in place), waiting for it to land."""
    import torch.distributed as dist

    opts = dist.BroadcastOptions()
    opts.rootRank = 0
    group.broadcast([tensor], opts).wait()


def _send(f, message: dict) -> None:
    f.write(json.dumps(message).encode() + b"\n")
    f.flush()


def _recv(f, limit: int = 1 << 24) -> dict | None:
    """One message; None when the peer closed. ValueError on a line that is not a JSON object."""
    line = f.readline(limit)
    if not line:
        return None
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a control message must be a JSON object")
    return message


class NcclWeightServer:
    """Serves a `WeightStore`'s versions over pair groups; one thread per actor session."""

    def __init__(self, store: WeightStore, host: str = "127.0.0.1", port: int = 0, backend: str = "auto",
                 timeout_s: float = 120.0, token: str | None = None, device=None) -> None:
        import torch

        self.store, self.timeout_s, self.token = store, timeout_s, token
        self.backend = default_backend() if backend == "auto" else backend
        self.device = device or torch.device("cuda" if self.backend == "nccl" else "cpu")
        self.bytes_sent = 0
        self.transfers = 0
        self.sessions = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server((host, port))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="nccl-weights", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._session, args=(conn,), name="nccl-session", daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rwb") as f:
                self._serve(f)
        except Exception as exc:  # fault-tolerance boundary: one actor's session, never the server
            log.warning("nccl weights: session ended: %s", exc)

    def _serve(self, f) -> None:
        import torch.distributed as dist

        join = _recv(f)
        if join is None or join.get("op") != "join":
            raise ValueError("the first message must be a join")
        if self.token is not None and not hmac.compare_digest(str(join.get("token", "")), self.token):
            _send(f, {"error": "unauthenticated"})
            raise PermissionError("a join with a wrong token")
        timeout = datetime.timedelta(seconds=self.timeout_s)
        rendezvous = dist.TCPStore("0.0.0.0", 0, 2, True, timeout, wait_for_workers=False)
        _send(f, {"port": rendezvous.port, "backend": self.backend})
        group = pair_group(rendezvous, 0, self.backend, self.timeout_s)
        with self._lock:
            self.sessions += 1
        while (request := _recv(f)) is not None:
            op = request.get("op")
            if op == "latest":
                _send(f, {"version": self.store.newest_version()})
            elif op == "fetch":
                self._fetch(f, group, int(request.get("version", -1)))
            else:
                _send(f, {"error": f"unknown op {op!r}"})
                return

    def _fetch(self, f, group, version: int) -> None:
        item = self.store.get(version) if version >= -1 else None
        if item is None:
            _send(f, {"version": -1})
            return
        tensors = layout(item.payload)
        _send(f, {"version": item.version, "epoch": item.epoch, "wire_dtype": item.wire_dtype,
                  "tensors": [[name, str(t.dtype).removeprefix("torch."), list(t.shape)] for name, t in tensors]})
        sent = 0
        for _, tensor in tensors:
            broadcast(group, tensor.to(self.device))
            sent += tensor.numel() * tensor.element_size()
        with self._lock:
            self.bytes_sent += sent
            self.transfers += 1

    def close(self) -> None:
        self._sock.close()
        self._thread.join(timeout=5)


class NcclWeightSource(WeightSource):
    """An actor's side: pulls versions from a `NcclWeightServer` at `host:port` into tensors on
    this process's device (CUDA with nccl). The session (control connection and pair group) is
    opened on first use and again after a failure, which raises `IncompleteWeights` (retried)."""

    def __init__(self, address: str, timeout_s: float = 120.0, token: str | None = None) -> None:
        host, _, port = address.removeprefix("nccl://").rpartition(":")
        self.address, self.timeout_s = (host, int(port)), timeout_s
        if token is None:
            from relayrl.rpc import auth_token

            token = auth_token()
        self.token = token
        self.bytes_received = 0
        self._session = None  # (socket, file, group, device)

    def _open(self):
        import torch
        import torch.distributed as dist

        if self._session is None:
            conn = socket.create_connection(self.address, timeout=self.timeout_s)
            f = conn.makefile("rwb")
            _send(f, {"op": "join", "token": self.token})
            reply = _recv(f)
            if reply is None or "port" not in reply:
                conn.close()
                raise PermissionError(f"nccl weights at {self.address[0]}:{self.address[1]}: {reply}")
            timeout = datetime.timedelta(seconds=self.timeout_s)
            rendezvous = dist.TCPStore(self.address[0], int(reply["port"]), 2, False, timeout)
            group = pair_group(rendezvous, 1, reply["backend"], self.timeout_s)
            device = torch.device("cuda" if reply["backend"] == "nccl" else "cpu")
            self._session = (conn, f, group, device)
        return self._session

    def _call(self, request: dict, receive=None):
        try:
            _, f, group, device = self._open()
            _send(f, request)
            reply = _recv(f)
            if reply is None:
                raise ConnectionError("the learner closed the session")
            return reply, (receive(reply, group, device) if receive and reply.get("version", -1) >= 0 else None)
        except PermissionError:  # a wrong token: configuration, not a transient failure
            self.close()
            raise
        except (OSError, RuntimeError, ValueError) as exc:  # fault-tolerance boundary: reopen next time
            self.close()
            raise IncompleteWeights(f"nccl weights from {self.address[0]}:{self.address[1]}: {exc}") from exc

    def latest_version(self) -> int:
        return int(self._call({"op": "latest"})[0]["version"])

    @staticmethod
    def _receive(reply: dict, group, device) -> dict:
        import torch

        state = {}
        for name, dtype, shape in reply["tensors"]:
            tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=device)
            broadcast(group, tensor)
            state[name] = tensor
        return state

    def fetch(self, version: int = -1) -> Fetched:
        reply, state = self._call({"op": "fetch", "version": version}, self._receive)
        if reply.get("version", -1) < 0:
            raise VersionUnavailable(f"version {version} is not available at {self.address[0]}:{self.address[1]}")
        self.bytes_received += sum(t.numel() * t.element_size() for t in state.values())
        return Fetched(int(reply["version"]), state, str(reply.get("epoch", "")))

    def close(self) -> None:
        if self._session is not None:
            conn, f = self._session[:2]
            self._session = None
            with contextlib.suppress(OSError):  # closing a session whose peer is gone
                f.close()
            conn.close()
