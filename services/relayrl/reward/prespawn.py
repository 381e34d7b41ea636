"""Sandboxes started ahead of their jobs, so a short job pays none of its sandbox's start-up.

Starting a code job's sandbox (bubblewrap's namespaces, the uid drop, the limits, the judge's
interpreter, the zygote's `site`) costs tens of milliseconds: most of a one-case job. Every code
job runs the same command with the same files and limits; only its stdin (the job) differs. So
`Prespawned` keeps `count` sandboxes started (`Sandbox.start`), each waiting for its input, and
`take()` hands one out and starts its successor in the background.

The code verifier keeps two per job slot: starting a sandbox is mostly waiting (execs, the
kernel making namespaces), so starting several at once keeps up with short jobs.

Isolation is unchanged: each job still gets a sandbox of its own, never used before, with its
own namespaces, leased uid, cgroup and tmpfs, and a started sandbox holds nothing of any job
(the judge forks its zygote before it reads one). What it costs: `count` idle sandboxes (a
bubblewrap monitor, the judge and its zygote each) and their uids while the service runs; CPU
is the same per job, it only moves off the job's critical path.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from relayrl.reward.sandbox import Sandbox
from relayrl.reward.sandbox_job import StartedJob

log = logging.getLogger(__name__)


class Prespawned:
    """`count` sandboxes of one command kept started; thread-safe."""

    def __init__(self, sandbox: Sandbox, argv: list[str], files: dict[str, bytes], as_pid_1: bool, count: int) -> None:
        self.sandbox, self.argv, self.files, self.as_pid_1 = sandbox, argv, files, as_pid_1
        self._ready: queue.SimpleQueue[StartedJob | None] = queue.SimpleQueue()
        self._starting = ThreadPoolExecutor(count, thread_name_prefix="sandbox-prespawn")
        self._lock = threading.Condition()
        self._idle: set[StartedJob] = set()
        self._in_flight = 0
        self._closed = False
        for _ in range(count):
            self._submit()

    def _submit(self) -> None:
        with self._lock:
            self._in_flight += 1
        self._starting.submit(self._start_one)

    def _start_one(self) -> None:
        try:
            job = self.sandbox.start(self.argv, self.files, self.as_pid_1)
        except Exception:  # fault boundary: the taker starts its own sandbox and sees the error
            log.exception("starting a sandbox ahead of its job failed")
            job = None
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()
            if job is None or not self._closed:
                if job is not None:
                    self._idle.add(job)
                self._ready.put(job)
                return
        job.close()

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until no sandbox is being started (tests look at the host's processes then)."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout_s)

    def take(self) -> StartedJob:
        """A started sandbox (one of those kept, else a new one), and its successor on the way."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the prespawned sandboxes are closed")
        self._submit()
        job = self._ready.get()
        with self._lock:
            self._idle.discard(job)
        return job if job is not None else self.sandbox.start(self.argv, self.files, self.as_pid_1)

    def idle_uids(self) -> set[int]:
        """The uids the idle sandboxes hold (tests tell their processes from a job's leftovers)."""
        with self._lock:
            return {job.lease.uid for job in self._idle if job.lease is not None}

    def idle_cgroups(self) -> list:
        """The idle sandboxes' job cgroups (likewise)."""
        with self._lock:
            return [job.cgroup for job in self._idle if job.cgroup is not None]

    def close(self) -> None:
        """Kill the idle sandboxes and start no more."""
        with self._lock:
            self._closed = True
        self._starting.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, set()
        for job in idle:
            job.close()
