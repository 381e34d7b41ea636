"""Reward workers: score slow-lane jobs (SWE) leased off Redis; `relayrl serve reward-worker`.

Workers are stateless consumers of `relayrl:{run}:swe` (consumer group `reward-workers`): start
as many as the backlog needs (DESIGN.md: KEDA scales them on the stream's lag), kill any at any
moment. A killed worker's jobs are leased again by the others once their lease expires
(`reward.slow_lane.lease_s`). On SIGTERM / SIGINT a worker stops leasing, gives its running jobs
`grace_s` to finish, and leaves the rest to expire and be taken over. The reward service runs
`reward.slow_lane.service_workers` of them in its own process too. How a job travels (leases,
renewals, dead letters, the reward service's side) is told in `relayrl.reward.slow_lane`.

Redis being away (`relayrl.retry.is_transient`) is retried with backoff. Any other error in a
worker's loops (a bug, or Redis refusing a command, e.g. a consumer group that vanished with a
Redis restarted without its data) stops the worker and is kept as its `failure()`; `main` then
exits non-zero, so the orchestrator restarts the process (which re-creates the consumer group)
instead of a loop retrying a bug forever.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client import Counter, Histogram

from relayrl.config import LatencyEmulation, RewardConfig
from relayrl.replay.base import AckRef, Entry, ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.replay.leases import LeaseKeeper
from relayrl.retry import Backoff, is_transient
from relayrl.reward.verifiers.base import Score, Verifier
from relayrl.reward.verifiers.registry import create

log = logging.getLogger(__name__)

BUCKETS = (.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Histogram buckets (seconds) of the slow lane's job timings."""
EXPIRIES = Counter("relayrl_slow_lane_lease_expiries_total", "Slow-lane jobs leased again because their lease "
                   "expired (the worker died, stalled, or gave up after an infrastructure error).")
JOB_SECONDS = Histogram("relayrl_slow_lane_job_seconds", "Time a worker spent on one slow-lane job (emulated "
                        "latency included).", ["kind"], buckets=BUCKETS)
JOBS = Counter("relayrl_slow_lane_jobs_total", "Slow-lane jobs finished by workers, by kind and outcome.",
               ["kind", "outcome"])
DEAD = Counter("relayrl_slow_lane_dead_letters_total", "Slow-lane jobs moved to the dead-letter stream.", ["kind"])


@dataclass
class Job:
    """One sample to score on the slow lane."""

    job_id: str
    group_id: str
    index: int
    kind: str
    response: str
    reference: str
    reply_to: str
    enqueued_at: float

    def dumps(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def loads(cls, data: bytes) -> Job:
        return cls(**json.loads(data))


def emulated_delay(cfg: LatencyEmulation, job_id: str) -> float:
    """The emulated latency of a job: lognormal with the configured median and p99, a function of
    (seed, job id) only, so a retried job and both arms of a benchmark see the same delays."""
    sigma = math.log(cfg.p99_s / cfg.median_s) / 2.3263478740408408  # z of the 99th percentile
    z = random.Random(f"{cfg.seed}:{job_id}").gauss(0.0, 1.0)
    return min(cfg.max_s, cfg.median_s * math.exp(sigma * z))


class Loops:
    """Background threads that stop together: the first error one of them lets through (not a
    transient one: those are retried inside the loops) is logged and kept as `failure()`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self._guard, args=(target,), name=f"{self.name}-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception as exc:  # the boundary of a thread: what escapes here would vanish silently
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        log.error("%s: stopping after an error that is not transient", self.name, exc_info=exc)
        if self._error is None:
            self._error = exc
        self._stop.set()

    def failure(self) -> BaseException | None:
        """The error that stopped these loops, or None while they run (or were stopped cleanly)."""
        return self._error


class Worker(Loops):
    """Leases slow-lane jobs and scores them, `slow_lane.concurrency` at a time; thread-safe."""

    def __init__(self, cfg: RewardConfig, queue: ReplayQueue, run: str, worker_id: str,
                 verifiers: dict[str, Verifier] | None = None) -> None:
        super().__init__(worker_id)
        self.cfg, self.lane, self.queue, self.keys, self.worker_id = cfg, cfg.slow_lane, queue, StreamKeys(run), worker_id
        self._verifiers = dict(verifiers or {})
        self._own = [] if verifiers is not None else None  # verifiers this worker built (and closes)
        self._lock = threading.Lock()
        self._held: dict[str, Job] = {}  # entry id -> job, the jobs running
        # a running job's lease is renewed every lease_s / 3; an abandoned one expires and is retried
        self._leases = LeaseKeeper(queue, self.keys.swe, StreamKeys.REWARD_WORKERS, self.lane.lease_s / 3, worker_id)
        self._pool = ThreadPoolExecutor(self.lane.concurrency, thread_name_prefix=f"{worker_id}-job")
        self.jobs_done = 0
        queue.ensure_group(self.keys.swe, StreamKeys.REWARD_WORKERS)

    def start(self) -> None:
        self._spawn(self.run, "lease")
        self._leases.start()

    def stop(self, wait: bool = False) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._leases.stop()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        for verifier in self._own or []:
            verifier.close()

    def failure(self) -> BaseException | None:
        """The error that stopped this worker's loops or its lease renewals, or None."""
        return self._error or self._leases.failure()

    def busy(self) -> bool:
        """True while any leased job is running."""
        with self._lock:
            return bool(self._held)

    def run(self) -> None:
        """Lease and start jobs until stopped."""
        backoff = Backoff(stop=self._stop)
        while not self._stop.is_set():
            if (error := self._leases.failure()) is not None:
                raise error
            with self._lock:
                free = self.lane.concurrency - len(self._held)
            if free <= 0:
                self._stop.wait(0.05)
                continue
            try:
                entries = self.queue.lease(self.keys.swe, StreamKeys.REWARD_WORKERS, self.worker_id, count=free,
                                           block_s=self.lane.poll_s, reclaim_idle_s=self.lane.lease_s)
            except Exception as exc:  # retry boundary: Redis briefly unreachable; the jobs wait in the stream
                if not is_transient(exc):
                    raise
                log.warning("%s: leasing failed: %s; retrying in %.1f s", self.worker_id, exc, backoff.next_s)
                backoff.wait()
                continue
            backoff.reset()
            for entry in entries:
                job = Job.loads(entry.payload)
                if entry.deliveries > 1:
                    EXPIRIES.inc()
                if entry.deliveries > self.lane.max_deliveries:
                    self._dead_letter(entry, job, f"leased {entry.deliveries} times without a result")
                    continue
                with self._lock:
                    self._held[entry.id] = job
                self._leases.hold(entry.id, self.worker_id)
                self._pool.submit(self._run_job, entry, job)

    def _verifier(self, kind: str) -> Verifier:
        with self._lock:
            if kind not in self._verifiers:
                self._verifiers[kind] = create(kind, self.cfg)
                if self._own is not None:
                    self._own.append(self._verifiers[kind])
            return self._verifiers[kind]

    def _run_job(self, entry: Entry, job: Job) -> None:
        started = time.monotonic()
        try:
            emulation = self.lane.emulate_latency
            if emulation is not None and self._stop.wait(emulated_delay(emulation, job.job_id)):
                return  # stopping: abandon the job, its lease expires and another worker takes it
            try:
                score = self._verifier(job.kind).score(job.response, job.reference)
            except Exception as exc:  # fault boundary: a verifier bug is an infrastructure error
                log.exception("%s: verifier %s raised on job %s", self.worker_id, job.kind, job.job_id)
                score = Score.infra_error(f"verifier raised {exc!r}")
            score.details["worker"] = self.worker_id
            score.details["deliveries"] = entry.deliveries
            JOB_SECONDS.labels(job.kind).observe(time.monotonic() - started)
            JOBS.labels(job.kind, score.outcome).inc()
            if score.outcome == "infra_error" and entry.deliveries < self.lane.max_deliveries:
                # Not acknowledged and no longer renewed: the lease expires and the job is tried again.
                log.warning("%s: job %s hit an infrastructure error (delivery %d): %s", self.worker_id,
                            job.job_id, entry.deliveries, score.details.get("error"))
                return
            if score.outcome == "infra_error":
                self._dead_letter(entry, job, score.details.get("error", "infrastructure error"), score)
                return
            self._reply(entry, job, score)
            self.jobs_done += 1
        except Exception as exc:  # the boundary of a pool task, whose exception would vanish silently
            if not is_transient(exc):
                self._fail(exc)
            else:  # Redis away: the result is not written, the lease expires and the job runs again
                log.warning("%s: writing the result of job %s failed: %s", self.worker_id, job.job_id, exc)
        finally:
            self._leases.release(entry.id)
            with self._lock:
                self._held.pop(entry.id, None)

    def _reply(self, entry: Entry, job: Job, score: Score) -> None:
        result = {"job_id": job.job_id, "group_id": job.group_id, "index": job.index, "score": score.to_dict()}
        self.queue.put(job.reply_to, json.dumps(result, default=str).encode(),
                       ack=AckRef(self.keys.swe, StreamKeys.REWARD_WORKERS, entry.id))

    def _dead_letter(self, entry: Entry, job: Job, reason: str, score: Score | None = None) -> None:
        """Park the job on the dead-letter stream, then answer its sample with an infrastructure
        error (in that order: a crash in between re-leases the job, and the dead letter repeats)."""
        log.error("%s: job %s dead-lettered after %d deliveries: %s", self.worker_id, job.job_id,
                  entry.deliveries, reason)
        letter = {"job": json.loads(job.dumps()), "entry_id": entry.id, "deliveries": entry.deliveries,
                  "reason": reason, "worker": self.worker_id, "at": time.time()}
        self.queue.put(self.keys.dead, json.dumps(letter).encode())
        DEAD.labels(job.kind).inc()
        final = Score.infra_error(f"dead-lettered after {entry.deliveries} deliveries: {reason}",
                                  dead_letter=True, deliveries=entry.deliveries,
                                  **({"last": score.details} if score else {}))
        self._reply(entry, job, final)


def main(config_path: str | Path, redis_url: str | None = None, worker_id: str | None = None,
         concurrency: int | None = None, metrics_port: int | None = None, host: str = "127.0.0.1",
         grace_s: float = 30.0) -> None:
    """Score slow-lane jobs of the run in `config_path` until SIGTERM / SIGINT, or until the worker
    fails (then exit 1). `redis_url` overrides `queue.url`; `metrics_port` serves Prometheus."""
    from relayrl.config import RunConfig
    from relayrl.metrics import serve_metrics
    from relayrl.replay import make_queue

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
    while not stop.wait(1.0) and worker.failure() is None:
        pass
    log.info("stopping: %d jobs done", worker.jobs_done)
    deadline = time.monotonic() + grace_s
    worker.stop(wait=False)
    while worker.busy() and time.monotonic() < deadline:
        time.sleep(0.2)
    queue.close()
    if (error := worker.failure()) is not None:
        raise SystemExit(f"reward worker {worker_id} stopped: {type(error).__name__}: {error}")
