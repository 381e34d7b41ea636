"""gRPC plumbing every relayrl service shares: a server with health, reflection, size limits, auth.

Each service registers its servicer through `start_server`, which also serves the standard
`grpc.health.v1` check (so Kubernetes' native gRPC probes work) and server reflection (so
`grpcurl` can list and call methods), with message-size limits on both directions.

Auth: whoever can call the reward service can run code on the cluster, so when a token is set
(argument, or the `RELAYRL_AUTH_TOKEN` environment variable, which a Kubernetes Secret or the
single-machine launcher provides) every call must carry `authorization: Bearer <token>`;
anything else is answered UNAUTHENTICATED before it reaches a servicer. The health check and
server reflection are exempt: Kubernetes' gRPC probes cannot send metadata, `grpcurl` asks
reflection before any call (its health check included), and neither reveals run data (reflection
lists the service schemas, which are public in protos/). `channel` attaches the same token to
every call. `RELAYRL_AUTH_TOKEN` set but empty is refused (StartupError), never read as "no
auth": the gateway gives it the same one meaning. What this does not cover: transport encryption
(put mTLS or a mesh in front on an untrusted network) and per-caller identities (one shared token
per run).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from relayrl.preflight import StartupError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
TOKEN_ENV = "RELAYRL_AUTH_TOKEN"
# methods any caller may use without the token: health and reflection reveal no run data
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", f"/{reflection.SERVICE_NAME}/")

OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
# Clients spread calls over every address their target resolves to: with one address (loopback,
# a ClusterIP Service) the same as gRPC's default pick_first; with a headless Service
# (`dns:///name:port`, one record per pod) each call goes to the next pod that is up.
CLIENT_OPTIONS = [*OPTIONS, ("grpc.lb_policy_name", "round_robin")]
# Servers close each connection after two minutes (calls in flight finish first: no grace limit),
# so clients resolve their target again and pods added since (an autoscaler's) get calls too.
SERVER_OPTIONS = [*OPTIONS, ("grpc.max_connection_age_ms", 120_000)]


def auth_token(token: str | None = None) -> str | None:
    """The token to require / send: the argument, else $RELAYRL_AUTH_TOKEN; None (unset) disables
    auth. An empty one is a StartupError: it would read as "no auth" by accident."""
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    if token is not None and not token.strip():
        raise StartupError(f"{TOKEN_ENV} is set but empty: set a token, or unset it to run without auth")
    return token


class _RequireToken(grpc.ServerInterceptor):
    """Answers UNAUTHENTICATED unless the call carries the run's bearer token."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or details.method.startswith(EXEMPT_PREFIXES):
            return handler
        got = dict(details.invocation_metadata).get("authorization", "")
        if hmac.compare_digest(got.encode(), self._expected):
            return handler
        return _denied(handler, "missing or wrong token" if got else "this service requires an auth token")


def _denied(handler: grpc.RpcMethodHandler, why: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that rejects the call."""
    def deny(request_or_iterator, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, why)

    codec = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny, **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny, **codec)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **codec)
    return grpc.stream_stream_rpc_method_handler(deny, **codec)


class _AttachToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = [*(details.metadata or ()), self._header]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base, metadata) -> None:
        self.method, self.timeout, self.credentials = base.method, base.timeout, base.credentials
        self.wait_for_ready, self.compression = base.wait_for_ready, base.compression
        self.metadata = metadata


class _Malformed:
    """What a request that does not parse becomes, so the servicer is never called with it."""

    def __init__(self, why: str) -> None:
        self.why = why


class _RejectMalformed(grpc.ServerInterceptor):
    """Bytes that do not parse as the method's request (truncated, wrong wire types, invalid
    UTF-8 in a string field) are INVALID_ARGUMENT with the parser's reason; gRPC's default is
    INTERNAL "Exception deserializing request!", which blames the server and says nothing."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        method = details.method

        def lenient(data: bytes):
            try:
                return parse(data)
            except Exception as exc:  # any parser failure is the caller's malformed input
                return _Malformed(f"{type(exc).__name__}: {exc}")

        def check(request, context):
            if isinstance(request, _Malformed):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request to {method}: {request.why}")
            return request

        codec = {"request_deserializer": lenient, "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(lambda r, c: handler.unary_unary(check(r, c), c), **codec)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(lambda r, c: handler.unary_stream(check(r, c), c), **codec)
        checked = lambda it, c: (check(r, c) for r in it)  # noqa: E731
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(lambda it, c: handler.stream_unary(checked(it, c), c), **codec)
        return grpc.stream_stream_rpc_method_handler(lambda it, c: handler.stream_stream(checked(it, c), c), **codec)


def start_server(port: int, registrations: list[tuple[Callable, object, str]], host: str = "127.0.0.1",
                 workers: int = 8, token: str | None = None) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Start a server with each (add_XServicer_to_server, servicer, full service name).

    Returns the server, the bound port (useful with port 0) and the health servicer, whose
    status a service may flip to NOT_SERVING while it drains. With a token (see `auth_token`)
    every call but health and reflection must carry it. A port that cannot be bound (in use) is
    a StartupError naming it.
    """
    token = auth_token(token)
    interceptors = ([_RequireToken(token)] if token else []) + [_RejectMalformed()]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=SERVER_OPTIONS,
                         interceptors=interceptors)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = []
    for add, servicer, name in registrations:
        add(servicer, server)
        names.append(name)
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpc's "Failed to bind": the port is in use (or the address is not ours)
        bound = 0
    if bound == 0:
        raise StartupError(f"cannot listen for gRPC on {host}:{port} (in use, or not an address of this host): "
                           "pass another --port")
    server.start()
    return server, bound, health_servicer


def channel(address: str, token: str | None = None) -> grpc.Channel:
    """A client channel with the same message-size limits, round-robin over the addresses
    `address` resolves to (e.g. "dns:///reward-headless:50051"), sending the run's token if there is one."""
    ch = grpc.insecure_channel(address, options=CLIENT_OPTIONS)
    token = auth_token(token)
    return grpc.intercept_channel(ch, _AttachToken(token)) if token else ch


def wait_ready(address: str, timeout_s: float = 30.0) -> None:
    """Block until the server at `address` reports SERVING (raises on timeout)."""
    import time

    deadline = time.monotonic() + timeout_s
    with channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not serving after {timeout_s} s")
            time.sleep(0.1)
