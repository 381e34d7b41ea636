"""The learner process: the gRPC `LearnerService` (weights, status) around the training loop.

The weight methods (`GetLatestVersion`, `GetWeights`) are `relayrl.weights.service`'s, over the
learner's weight store; this servicer adds only `GetStatus`, from the learner's counters. With
`learner.weights.nccl.port` set, the same store is also served over the broadcast fast path.
Training runs on the main thread; gRPC answers from its own threads, so actors pull weights while
the learner trains.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from relayrl.learner.trainer import Learner
from relayrl.weights import service
from relayrl.wire import learner_pb2

log = logging.getLogger("relayrl.learner")


class LearnerServicer(service.WeightServicer):
    """The weight service over `learner.store`, plus the learner's status."""

    def __init__(self, learner: Learner) -> None:
        super().__init__(learner.store, learner.cfg.learner.weights.chunk_bytes)
        self.learner = learner

    def GetStatus(self, request, context):
        lr = self.learner
        c = lr.counters
        return learner_pb2.LearnerStatus(
            version=lr.version, step=lr.step, groups_trained=c.groups_trained,
            groups_dropped_stale=c.groups_dropped["stale"], prompts_admitted=lr.admission.admitted,
            last_reward_mean=c.last_reward_mean, done=lr.done, epoch=lr.epoch)


def serve(learner: Learner, port: int, host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    return service.serve(LearnerServicer(learner), port, host)


def serve_nccl(learner: Learner, host: str = "127.0.0.1"):
    """The broadcast fast path (`relayrl.weights.nccl`) over the learner's store, when
    `learner.weights.nccl.port` is set; None otherwise."""
    cfg = learner.cfg.learner.weights.nccl
    if cfg.port is None:
        return None
    from relayrl.rpc import auth_token
    from relayrl.weights.nccl import NcclWeightServer

    server = NcclWeightServer(learner.store, host, cfg.port, cfg.backend, cfg.timeout_s, token=auth_token(),
                              device=learner.policy.device)
    log.info("nccl weights (%s) on %s:%d", server.backend, host, server.port)
    return server


def main(config_path: str, redis_url: str | None, port: int, out: str, model_dir: str, steps: int | None = None,
         metrics_port: int | None = None, host: str = "127.0.0.1", fresh: bool = False) -> None:
    """Entry of `relayrl serve learner`: train for `steps` in all, serving weights meanwhile. It
    continues the run in `out` from its newest checkpoint when there is one (restart is resume);
    `fresh` refuses to start over an existing run instead."""
    from relayrl.config import RunConfig
    from relayrl.metrics import serve_metrics
    from relayrl.replay import make_queue

    cfg = RunConfig.load(config_path)
    queue = make_queue(cfg.queue, redis_url)
    learner = Learner(cfg, queue, model_dir, Path(out), fresh=fresh)
    if learner.updater is not None and learner.updater.rank > 0:  # torchrun: rank 0 alone serves and publishes
        log.info("learner rank %d following rank 0", learner.updater.rank)
        learner.updater.follow()
        queue.close()
        return
    server, bound = serve(learner, port, host)
    nccl = serve_nccl(learner, host)
    serve_metrics(metrics_port, host)
    log.info("learner serving on %s:%d", host, bound)
    try:
        learner.run(steps)
    finally:
        server.stop(grace=2).wait()
        if nccl is not None:
            nccl.close()
        queue.close()
