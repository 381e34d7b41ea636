"""`relayrl serve reward-worker`: a process that scores slow-lane jobs (SWE) off Redis.

Workers are stateless consumers of `relayrl:{run}:swe` (consumer group `reward-workers`): start
as many as the backlog needs (DESIGN.md: KEDA scales them on the stream's lag), kill any at any
moment. A killed worker's jobs are leased again by the others once their lease expires
(`reward.slow_lane.lease_s`). On SIGTERM / SIGINT a worker stops leasing, gives its running jobs
`grace_s` to finish, and leaves the rest to expire and be taken over.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


def main(config_path: str | Path, redis_url: str | None = None, worker_id: str | None = None,
         concurrency: int | None = None, metrics_port: int | None = None, host: str = "127.0.0.1",
         grace_s: float = 30.0) -> None:
    from relayrl.config import RunConfig
    from relayrl.metrics import serve_metrics
    from relayrl.replay import make_queue
    from relayrl.reward.slow_lane import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = RunConfig.load(config_path)
    if concurrency is not None:
        cfg.reward.slow_lane.concurrency = concurrency
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    queue = make_queue(cfg.queue, url=redis_url)
    serve_metrics(metrics_port, host)
    worker = Worker(cfg.reward, queue, cfg.run, worker_id)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    log.info("reward worker %s for run %r: kinds %s, %d jobs at once", worker_id, cfg.run,
             ", ".join(cfg.reward.slow_lane.kinds), cfg.reward.slow_lane.concurrency)
    while not stop.wait(1.0):
        pass
    log.info("stopping: %d jobs done", worker.jobs_done)
    deadline = time.monotonic() + grace_s
    worker.stop(wait=False)
    while worker.busy() and time.monotonic() < deadline:
        time.sleep(0.2)
    queue.close()
