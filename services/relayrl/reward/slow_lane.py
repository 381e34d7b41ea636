"""The slow lane: long reward jobs (SWE) on their own Redis stream, leased by reward workers.

Fast kinds (math, short code) are scored on the reward service's threads; kinds listed in
`reward.slow_lane.kinds` are not: each of their samples becomes a job on `relayrl:{run}:swe`
(consumer group `reward-workers`), so a minutes-long test run never holds a thread, a lane or
a fast job up. The pieces, all on the `ReplayQueue` boundary (Redis streams, or in memory):

- `SlowLane` (in the reward service): `enqueue` puts one job per sample; a listener thread
  leases results from `relayrl:{run}:swe-results` and hands each to the service, which writes
  the group (and acknowledges its prompt) only when every sample has a score. A result for a
  sample already scored, or for a group no longer in flight, is ignored: results are idempotent.
- `Worker` (in `relayrl serve reward-worker` processes, and `service_workers` loops inside the
  reward service): leases up to `concurrency` jobs, first taking over jobs idle past `lease_s`
  (XAUTOCLAIM: their worker died), renews the leases of running jobs every `lease_s / 3`, and
  hands each result over in the same transaction that acknowledges the job (XADD + XACK), so a
  job is never both lost and done. A job leased more than `max_deliveries` times without a
  result (workers died under it, or it kept hitting infrastructure errors) goes to
  `relayrl:{run}:dead` and its sample is scored as an infrastructure error: the group still
  completes, and the learner never trains on that sample as a zero.

A job can run twice (a worker stalled past its lease while another took it over); both results
are valid and the second is ignored. Jobs of a reward service that died are orphans: its groups'
prompts are re-leased by actors and generated again, and the orphans' results are acknowledged
and dropped. `emulate_latency` (benchmarks only) sleeps a lognormal delay before each job: an
EMULATION of SWE-like latency, not a real test run.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from prometheus_client import Counter, Gauge, Histogram

from relayrl import metrics
from relayrl.config import LatencyEmulation, RewardConfig, StreamKeys, keys
from relayrl.replay.base import AckRef, Entry, ReplayQueue
from relayrl.reward.verifiers.base import Score, Verifier
from relayrl.reward.verifiers.registry import create

log = logging.getLogger(__name__)

_BUCKETS = (.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LAG = Gauge("relayrl_slow_lane_lag_seconds", "Age of the oldest slow-lane job this reward service is still waiting for.")
EXPIRIES = Counter("relayrl_slow_lane_lease_expiries_total", "Slow-lane jobs leased again because their lease "
                   "expired (the worker died, stalled, or gave up after an infrastructure error).")
JOB_SECONDS = Histogram("relayrl_slow_lane_job_seconds", "Time a worker spent on one slow-lane job (emulated "
                        "latency included).", ["kind"], buckets=_BUCKETS)
WAIT_SECONDS = Histogram("relayrl_slow_lane_wait_seconds", "From enqueueing a slow-lane job to its result reaching "
                         "the reward service.", ["kind"], buckets=_BUCKETS)
JOBS = Counter("relayrl_slow_lane_jobs_total", "Slow-lane jobs finished by workers, by kind and outcome.",
               ["kind", "outcome"])
DEAD = Counter("relayrl_slow_lane_dead_letters_total", "Slow-lane jobs moved to the dead-letter stream.", ["kind"])
ORPHANS = Counter("relayrl_slow_lane_orphan_results_total", "Results for groups no longer in flight (ignored).")


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


def score_to_dict(score: Score) -> dict:
    return {"outcome": score.outcome, "reward": score.reward, "components": score.components,
            "details": score.details, "duration_s": score.duration_s}


def emulated_delay(cfg: LatencyEmulation, job_id: str) -> float:
    """The emulated latency of a job: lognormal with the configured median and p99, a function of
    (seed, job id) only, so a retried job and both arms of a benchmark see the same delays."""
    sigma = math.log(cfg.p99_s / cfg.median_s) / 2.3263478740408408  # z of the 99th percentile
    z = random.Random(f"{cfg.seed}:{job_id}").gauss(0.0, 1.0)
    return min(cfg.max_s, cfg.median_s * math.exp(sigma * z))


class SlowLane:
    """The reward service's side: enqueue jobs, receive their results (`on_result(group_id, index,
    kind, score)`), and run `service_workers` worker loops in this process."""

    def __init__(self, cfg: RewardConfig, queue: ReplayQueue, run: str,
                 on_result: Callable[[str, int, str, Score], None], verifiers: dict[str, Verifier] | None = None,
                 consumer: str = "reward-service") -> None:
        self.cfg, self.lane, self.queue, self.keys = cfg, cfg.slow_lane, queue, keys(run)
        self.kinds = set(self.lane.kinds)
        self.on_result, self.consumer = on_result, consumer
        queue.ensure_group(self.keys.swe, StreamKeys.REWARD_WORKERS)
        queue.ensure_group(self.keys.swe_results, StreamKeys.REWARD_SERVICE)
        self._lock = threading.Lock()
        self._outstanding: dict[str, tuple[float, str]] = {}  # job id -> (enqueued, monotonic; kind)
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="slow-lane-results", daemon=True)
        self._listener.start()
        self.workers = [Worker(cfg, queue, run, f"{consumer}-worker-{i}", verifiers)
                        for i in range(self.lane.service_workers)]
        for worker in self.workers:
            worker.start()

    def enqueue(self, group_id: str, index: int, kind: str, response: str, reference: str) -> str:
        job = Job(f"{group_id}/{index}", group_id, index, kind, response, reference, self.keys.swe_results, time.time())
        with self._lock:
            self._outstanding[job.job_id] = (time.monotonic(), kind)
        self.queue.put(self.keys.swe, job.dumps())
        return job.job_id

    def close(self) -> None:
        """Stop the listener and this process's workers (their running jobs are abandoned: the
        leases expire and other workers take them over)."""
        self._stop.set()
        for worker in self.workers:
            worker.stop()
        self._listener.join(timeout=10)

    def _listen(self) -> None:
        # Results a previous incarnation of this consumer leased and never acknowledged: orphans.
        backlog = self.queue.pending_for(self.keys.swe_results, StreamKeys.REWARD_SERVICE, self.consumer)
        last_metrics = 0.0
        while not self._stop.is_set():
            try:
                entries = backlog or self.queue.lease(self.keys.swe_results, StreamKeys.REWARD_SERVICE,
                                                      self.consumer, count=256, block_s=min(1.0, self.lane.poll_s))
                backlog = []
                for entry in entries:
                    self._deliver(entry)
                if entries:
                    self.queue.ack(self.keys.swe_results, StreamKeys.REWARD_SERVICE, [e.id for e in entries])
                if time.monotonic() - last_metrics >= self.lane.poll_s:
                    last_metrics = time.monotonic()
                    self._observe()
            except Exception:  # fault boundary: Redis briefly unreachable; results wait in the stream
                log.warning("slow-lane result listener failed; retrying", exc_info=True)
                self._stop.wait(1.0)

    def _deliver(self, entry: Entry) -> None:
        result = json.loads(entry.payload)
        with self._lock:
            started = self._outstanding.pop(result["job_id"], None)
        if started is None:
            ORPHANS.inc()
            return
        WAIT_SECONDS.labels(started[1]).observe(time.monotonic() - started[0])
        s = result["score"]
        score = Score(s["outcome"], s["reward"], s["components"], s["details"], s["duration_s"])
        self.on_result(result["group_id"], int(result["index"]), started[1], score)

    def _observe(self) -> None:
        metrics.QUEUE_DEPTH.labels("swe").set(self.queue.lag(self.keys.swe, StreamKeys.REWARD_WORKERS))
        metrics.QUEUE_PENDING.labels("swe").set(self.queue.pending(self.keys.swe, StreamKeys.REWARD_WORKERS))
        with self._lock:
            oldest = min((t for t, _ in self._outstanding.values()), default=None)
        LAG.set(0.0 if oldest is None else time.monotonic() - oldest)


class Worker:
    """Leases slow-lane jobs and scores them, `slow_lane.concurrency` at a time; thread-safe."""

    def __init__(self, cfg: RewardConfig, queue: ReplayQueue, run: str, worker_id: str,
                 verifiers: dict[str, Verifier] | None = None) -> None:
        self.cfg, self.lane, self.queue, self.keys, self.worker_id = cfg, cfg.slow_lane, queue, keys(run), worker_id
        self._verifiers = dict(verifiers or {})
        self._own = [] if verifiers is not None else None  # verifiers this worker built (and closes)
        self._lock = threading.Lock()
        self._held: dict[str, Job] = {}  # entry id -> job, leases this worker renews
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(self.lane.concurrency, thread_name_prefix=f"{worker_id}-job")
        self._threads: list[threading.Thread] = []
        self.jobs_done = 0
        queue.ensure_group(self.keys.swe, StreamKeys.REWARD_WORKERS)

    def start(self) -> None:
        for target, name in ((self.run, "lease"), (self._renew_loop, "renew")):
            thread = threading.Thread(target=target, name=f"{self.worker_id}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, wait: bool = False) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._pool.shutdown(wait=wait, cancel_futures=True)
        for verifier in self._own or []:
            verifier.close()

    def busy(self) -> bool:
        """True while any leased job is running."""
        with self._lock:
            return bool(self._held)

    def run(self) -> None:
        """Lease and start jobs until stopped."""
        while not self._stop.is_set():
            with self._lock:
                free = self.lane.concurrency - len(self._held)
            if free <= 0:
                self._stop.wait(0.05)
                continue
            try:
                entries = self.queue.lease(self.keys.swe, StreamKeys.REWARD_WORKERS, self.worker_id, count=free,
                                           block_s=self.lane.poll_s, reclaim_idle_s=self.lane.lease_s)
            except Exception:  # fault boundary: Redis briefly unreachable; the jobs wait in the stream
                log.warning("%s: leasing failed; retrying", self.worker_id, exc_info=True)
                self._stop.wait(1.0)
                continue
            for entry in entries:
                job = Job.loads(entry.payload)
                if entry.deliveries > 1:
                    EXPIRIES.inc()
                if entry.deliveries > self.lane.max_deliveries:
                    self._dead_letter(entry, job, f"leased {entry.deliveries} times without a result")
                    continue
                with self._lock:
                    self._held[entry.id] = job
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
        except Exception:  # fault boundary: the result could not be written; the lease expires and the job is retried
            log.exception("%s: finishing job %s failed", self.worker_id, job.job_id)
        finally:
            with self._lock:
                self._held.pop(entry.id, None)

    def _reply(self, entry: Entry, job: Job, score: Score) -> None:
        result = {"job_id": job.job_id, "group_id": job.group_id, "index": job.index, "score": score_to_dict(score)}
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

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lane.lease_s / 3):
            with self._lock:
                ids = list(self._held)
            if not ids:
                continue
            try:
                self.queue.renew(self.keys.swe, StreamKeys.REWARD_WORKERS, self.worker_id, ids)
            except Exception:  # fault boundary: a missed renewal only risks a duplicate run, which is harmless
                log.warning("%s: renewing %d leases failed", self.worker_id, len(ids), exc_info=True)
