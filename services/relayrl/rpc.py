"""gRPC plumbing every relayrl service shares: a server with health, reflection and size limits.

Each service registers its servicer through `start_server`, which also serves the standard
`grpc.health.v1` check (so Kubernetes' native gRPC probes work) and server reflection (so
`grpcurl` can list and call methods), with message-size limits on both directions.
"""

from __future__ import annotations

from concurrent import futures
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def start_server(port: int, registrations: list[tuple[Callable, object, str]], host: str = "127.0.0.1",
                 workers: int = 8) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Start a server with each (add_XServicer_to_server, servicer, full service name).

    Returns the server, the bound port (useful with port 0) and the health servicer, whose
    status a service may flip to NOT_SERVING while it drains.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=OPTIONS)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = []
    for add, servicer, name in registrations:
        add(servicer, server)
        names.append(name)
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {host}:{port}")
    server.start()
    return server, bound, health_servicer


def channel(address: str) -> grpc.Channel:
    """A client channel with the same message-size limits."""
    return grpc.insecure_channel(address, options=OPTIONS)


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
