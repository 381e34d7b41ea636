"""The reward service's gRPC server: `relayrl.v1.RewardService`, `grpc.health.v1` and reflection.

The servicer is a thin translation of `RewardService`: a malformed request is INVALID_ARGUMENT
with the reason, a saturated service RESOURCE_EXHAUSTED (actors back off), a closing one
UNAVAILABLE. Health answers SERVING for "" and the service name (and, per task kind,
"relayrl.v1.RewardService/<kind>" says whether that kind is served, e.g. code needs its sandbox), so Kubernetes' native gRPC probe
works; reflection lets grpcurl list and call it. `main` is the process entrypoint the CLI and the
single-machine launcher run; it stops gracefully on SIGTERM / SIGINT (health goes NOT_SERVING,
in-flight RPCs get a grace period, then every accepted group is scored and written), and the same
way, then exits 1, when a background loop of the service fails (`RewardService.failure`).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2

from relayrl.config import RewardConfig, RunConfig
from relayrl.replay.base import ReplayQueue
from relayrl.reward.errors import Closed, Saturated
from relayrl.reward.service import RewardService
from relayrl.rpc import start_server
from relayrl.wire import reward_pb2, reward_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = reward_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name


class RewardServicer(reward_pb2_grpc.RewardServiceServicer):
    """gRPC face of a `RewardService`."""

    def __init__(self, service: RewardService) -> None:
        self.service = service

    def SubmitGroup(self, request, context):
        return reward_pb2.SubmitGroupResponse(accepted=self._guard(context, self.service.submit, request.group))

    def Score(self, request, context):
        score = self._guard(context, self.service.score, request.kind, request.response, request.reference)
        return reward_pb2.ScoreResponse(score=score.to_proto())

    def GetStatus(self, request, context):
        return self.service.status()

    @staticmethod
    def _guard(context, fn, *args):
        try:
            return fn(*args)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Saturated as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except Closed as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


class RewardServer:
    """A started server: `.server` (grpc.Server), `.service`, `.port` (the bound one), `.address`."""

    def __init__(self, server: grpc.Server, service: RewardService, health_servicer: health.HealthServicer,
                 host: str, port: int) -> None:
        self.server, self.service, self.health = server, service, health_servicer
        self.host, self.port = host, port
        self.address = f"{host}:{port}"

    def stop(self, grace: float = 5.0, drain: bool = True) -> None:
        """Report NOT_SERVING, give in-flight RPCs `grace` seconds, then drain the service."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.service.close(drain=drain)


def serve(cfg: RewardConfig, queue: ReplayQueue, run: str, port: int = 0, host: str = "127.0.0.1",
          max_in_flight: int = 1024, rpc_threads: int = 16) -> RewardServer:
    """Build a `RewardService` for run `run` over `queue` and serve it on host:port (0: any free
    port; read `.port`). Returns once the server is accepting calls."""
    service = RewardService(cfg, queue, run, max_in_flight=max_in_flight)
    try:
        server, bound, health_servicer = start_server(
            port, [(reward_pb2_grpc.add_RewardServiceServicer_to_server, RewardServicer(service), SERVICE_NAME)],
            host=host, workers=rpc_threads)
    except Exception:  # the port cannot be bound (StartupError), or anything else: no worker outlives it
        service.close(drain=False)
        raise
    # Per-kind health ("relayrl.v1.RewardService/code"): NOT_SERVING where a kind refuses work,
    # e.g. code without bubblewrap and without `sandbox.allow_weak`.
    for kind, info in service.health().items():
        health_servicer.set(f"{SERVICE_NAME}/{kind}", health_pb2.HealthCheckResponse.SERVING if info["available"]
                            else health_pb2.HealthCheckResponse.NOT_SERVING)
    return RewardServer(server, service, health_servicer, host, bound)


def main(config_path: str | Path, port: int, redis_url: str | None = None,
         metrics_port: int | None = None, host: str = "127.0.0.1", grace_s: float = 10.0) -> None:
    """Run the reward service of the run in `config_path` until SIGTERM / SIGINT.

    `redis_url` overrides `queue.url`; `metrics_port` serves Prometheus metrics on host."""
    from relayrl.metrics import serve_metrics
    from relayrl.replay import make_queue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = RunConfig.load(config_path)
    queue = make_queue(cfg.queue, url=redis_url)
    serve_metrics(metrics_port, host)
    running = serve(cfg.reward, queue, cfg.run, port=port, host=host)
    log.info("reward service for run %r on %s (kinds: %s)", cfg.run, running.address,
             ", ".join(sorted(running.service.verifiers)))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0) and running.service.failure() is None:
        pass
    log.info("stopping: draining groups in flight")
    running.stop(grace=grace_s)
    queue.close()
    if (error := running.service.failure()) is not None:
        raise SystemExit(f"reward service stopped: {type(error).__name__}: {error}")
