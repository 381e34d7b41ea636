"""The slow lane: long reward jobs (SWE) on their own Redis stream, leased by reward workers.

Fast kinds (math, short code) are scored on the reward service's threads; kinds listed in
`reward.slow_lane.kinds` are not: each of their samples becomes a job on `relayrl:{run}:swe`
(consumer group `reward-workers`), so a minutes-long test run never holds a thread, a lane or
a fast job up. The pieces, all on the `ReplayQueue` boundary (Redis streams, or in memory):

- `SlowLane` (in the reward service): `enqueue` puts one job per sample; a listener thread
  leases results from `relayrl:{run}:swe-results` and hands each to the service, which writes
  the group (and acknowledges its prompt) only when every sample has a score. A result for a
  sample already scored, or for a group no longer in flight, is ignored: results are idempotent.
- `Worker` (`relayrl.reward.worker`; in `relayrl serve reward-worker` processes, and
  `service_workers` loops inside the reward service): leases up to `concurrency` jobs, first taking over jobs idle past `lease_s`
  (XAUTOCLAIM: their worker died), renews the leases of running jobs every `lease_s / 3`, and
  hands each result over in the same transaction that acknowledges the job (XADD + XACK), so a
  job is never both lost and done. A job leased more than `max_deliveries` times without a
  result (workers died under it, or it kept hitting infrastructure errors) goes to
  `relayrl:{run}:dead` and its sample is scored as an infrastructure error: the group still
  completes, and the learner never trains on that sample as a zero.

Redis being away (`relayrl.retry.is_transient`) is retried with backoff by every loop. Any other
error in a background loop (a bug, or Redis refusing a command) stops that part and is kept as
its `failure()`; the process entrypoints (`relayrl serve reward`, `relayrl serve reward-worker`)
then exit non-zero, so the orchestrator restarts them instead of a loop retrying a bug forever.

A job can run twice (a worker stalled past its lease while another took it over); both results
are valid and the second is ignored. Jobs of a reward service that died are orphans: its groups'
prompts are re-leased by actors and generated again, and the orphans' results are acknowledged
and dropped. `emulate_latency` (benchmarks only) sleeps a lognormal delay before each job: an
EMULATION of SWE-like latency, not a real test run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from relayrl.config import RewardConfig
from relayrl.replay import metrics
from relayrl.replay.base import Entry, ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.retry import Backoff, is_transient
from relayrl.reward.verifiers.base import Score, Verifier
from relayrl.reward.worker import BUCKETS, Job, Loops, Worker

log = logging.getLogger(__name__)

LAG = Gauge("relayrl_slow_lane_lag_seconds", "Age of the oldest slow-lane job this reward service is still waiting for.")
WAIT_SECONDS = Histogram("relayrl_slow_lane_wait_seconds", "From enqueueing a slow-lane job to its result reaching "
                         "the reward service.", ["kind"], buckets=BUCKETS)
ORPHANS = Counter("relayrl_slow_lane_orphan_results_total", "Results for groups no longer in flight (ignored).")


class SlowLane(Loops):
    """The reward service's side: enqueue jobs, receive their results (`on_result(group_id, index,
    kind, score)`), and run `service_workers` worker loops in this process."""

    def __init__(self, cfg: RewardConfig, queue: ReplayQueue, run: str,
                 on_result: Callable[[str, int, str, Score], None], verifiers: dict[str, Verifier] | None = None,
                 consumer: str = "reward-service") -> None:
        super().__init__("slow-lane")
        self.cfg, self.lane, self.queue, self.keys = cfg, cfg.slow_lane, queue, StreamKeys(run)
        self.kinds = set(self.lane.kinds)
        self.on_result, self.consumer = on_result, consumer
        queue.ensure_group(self.keys.swe, StreamKeys.REWARD_WORKERS)
        queue.ensure_group(self.keys.swe_results, StreamKeys.REWARD_SERVICE)
        self._lock = threading.Lock()
        self._outstanding: dict[str, tuple[float, str]] = {}  # job id -> (enqueued, monotonic; kind)
        self._spawn(self._listen, "results")
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
        for thread in self._threads:
            thread.join(timeout=10)

    def failure(self) -> BaseException | None:
        """The error that stopped the result listener or one of this process's workers, if any."""
        return next((e for e in (self._error, *(w.failure() for w in self.workers)) if e is not None), None)

    def _listen(self) -> None:
        # Results a previous incarnation of this consumer leased and never acknowledged: orphans
        # (read inside the loop, so an outage at start-up is retried like any other).
        backlog: list[Entry] | None = None
        last_metrics = 0.0
        backoff = Backoff(stop=self._stop)
        while not self._stop.is_set():
            try:
                if backlog is None:
                    backlog = self.queue.pending_for(self.keys.swe_results, StreamKeys.REWARD_SERVICE, self.consumer)
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
                backoff.reset()
            except Exception as exc:  # retry boundary: Redis briefly unreachable; results wait in the stream
                if not is_transient(exc):
                    raise
                log.warning("slow-lane result listener: %s; retrying in %.1f s", exc, backoff.next_s)
                backoff.wait()

    def _deliver(self, entry: Entry) -> None:
        result = json.loads(entry.payload)
        with self._lock:
            started = self._outstanding.pop(result["job_id"], None)
        if started is None:
            ORPHANS.inc()
            return
        WAIT_SECONDS.labels(started[1]).observe(time.monotonic() - started[0])
        score = Score.from_dict(result["score"])
        self.on_result(result["group_id"], int(result["index"]), started[1], score)

    def _observe(self) -> None:
        metrics.QUEUE_DEPTH.labels("swe").set(self.queue.lag(self.keys.swe, StreamKeys.REWARD_WORKERS))
        metrics.QUEUE_PENDING.labels("swe").set(self.queue.pending(self.keys.swe, StreamKeys.REWARD_WORKERS))
        with self._lock:
            oldest = min((t for t, _ in self._outstanding.values()), default=None)
        LAG.set(0.0 if oldest is None else time.monotonic() - oldest)
