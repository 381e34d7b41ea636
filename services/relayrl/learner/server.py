"""The learner process: the gRPC `LearnerService` (weights, status) around the training loop.

`GetWeights` streams a published version from the weight store in chunks; `GetLatestVersion`
and `GetStatus` answer from the learner's counters. Training runs on the main thread; gRPC
answers from its own threads, so actors pull weights while the learner trains.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from relayrl.learner.trainer import Learner
from relayrl.wire import learner_pb2, learner_pb2_grpc

log = logging.getLogger("relayrl.learner")


class LearnerServicer(learner_pb2_grpc.LearnerServiceServicer):
    def __init__(self, learner: Learner) -> None:
        self.learner = learner

    def GetLatestVersion(self, request, context):
        item = self.learner.store.get()
        if item is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no version published yet")
        return learner_pb2.VersionInfo(version=item.version, total_bytes=len(item.payload),
                                       wire_dtype=item.wire_dtype)

    def GetWeights(self, request, context):
        if request.version < -1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"version must be >= -1, got {request.version}")
        item = self.learner.store.get(request.version)
        if item is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"version {request.version} is not available "
                          f"(newest is {self.learner.version}; older versions are evicted)")
        total = len(item.payload)
        for offset, data in self.learner.store.chunks(item, self.learner.cfg.learner.weights.chunk_bytes):
            yield learner_pb2.WeightChunk(version=item.version, offset=offset, total_bytes=total, data=data)

    def GetStatus(self, request, context):
        lr = self.learner
        c = lr.counters
        return learner_pb2.LearnerStatus(
            version=lr.version, step=lr.step, groups_trained=c.groups_trained,
            groups_dropped_stale=c.groups_dropped["stale"], prompts_admitted=lr.admission.admitted,
            last_reward_mean=c.last_reward_mean, done=lr.done)


def serve(learner: Learner, port: int, host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    from relayrl.rpc import start_server

    name = learner_pb2.DESCRIPTOR.services_by_name["LearnerService"].full_name
    server, bound, _ = start_server(port, [(learner_pb2_grpc.add_LearnerServiceServicer_to_server,
                                            LearnerServicer(learner), name)], host=host)
    return server, bound


def main(config_path: str, redis_url: str, port: int, out: str, model_dir: str, steps: int | None = None,
         metrics_port: int | None = None, host: str = "127.0.0.1", resume: bool = False) -> None:
    """Entry of `relayrl serve learner`: train for `steps` in all, serving weights meanwhile; with
    `resume`, continue from the newest checkpoint under `out`."""
    from relayrl.config import RunConfig
    from relayrl.metrics import serve_metrics
    from relayrl.replay import make_queue

    cfg = RunConfig.load(config_path)
    queue = make_queue(cfg.queue, redis_url)
    learner = Learner(cfg, queue, model_dir, Path(out), resume=resume)
    if learner.updater is not None and learner.updater.rank > 0:  # torchrun: rank 0 alone serves and publishes
        log.info("learner rank %d following rank 0", learner.updater.rank)
        learner.updater.follow()
        queue.close()
        return
    server, bound = serve(learner, port, host)
    serve_metrics(metrics_port, host)
    log.info("learner serving on %s:%d", host, bound)
    try:
        learner.run(steps)
    finally:
        server.stop(grace=2).wait()
        queue.close()
