"""A warm pool of prepared workspaces: sandbox sessions with a task's repository already extracted.

An agent episode starts in a sandbox holding its task's repository (`relayrl.reward.session`):
starting bubblewrap and the workspace server, extracting the snapshot and recording its git
baseline takes on the order of 100 ms per workspace, and a group needs G of them at once. The pool
keeps up to `warm` prepared sessions per task it has been asked for (the `max_tasks` most recent
ones; the spares of an older task are closed), and refills a task's spares in the background each
time one is taken, so the next episode of that task (the rest of its group, or its next prompt)
finds one ready instead of waiting (`relayrl_agent_workspace_wait_seconds{warm}` shows both).

Every sandbox is started by one of the pool's spawner threads (`spawners`, preparing in parallel),
which live as long as the pool: the sandbox's parent-death signal (bubblewrap's
`--die-with-parent`) follows the thread that started it, so a sandbox started by a short-lived
thread would die with that thread, while one started here dies only with the process (an actor
killed mid-episode leaves nothing running). Episodes waiting for a workspace go before spares.
Sessions given out are the caller's to close; `close` ends the spares and the threads.

The spares are per task: they serve the episodes of a task the actor has worked on lately (its
next prompt, the next epoch's); the first episodes of a task new to the actor wait for a
preparation.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future

from relayrl.reward.sandbox import Sandbox
from relayrl.reward.session import SandboxSession, SessionError
from relayrl.reward.swe.task import SweTask
from relayrl.reward.swe.workspace import SnapshotCache
from relayrl.rollout.metrics import WORKSPACE_PREPARE, WORKSPACE_WAIT

log = logging.getLogger(__name__)



class WorkspacePool:
    """Prepared sessions per task; thread-safe."""

    def __init__(self, sandbox: Sandbox, python: str, warm: int, max_tasks: int = 8, spawners: int = 2,
                 prepare_timeout_s: float = 60.0) -> None:
        self.sandbox, self.python, self.warm, self.max_tasks = sandbox, python, warm, max_tasks
        self.prepare_timeout_s = prepare_timeout_s
        self.snapshots = SnapshotCache()
        self._lock = threading.Lock()
        self._spares: OrderedDict[str, deque[SandboxSession]] = OrderedDict()
        self._refilling: dict[str, int] = {}
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._threads = [threading.Thread(target=self._spawner, name=f"workspace-spawner-{i}", daemon=True)
                         for i in range(spawners)]
        for thread in self._threads:
            thread.start()

    def acquire(self, task: SweTask) -> SandboxSession:
        """A session with `task`'s repository ready (a warm spare, else one prepared now); the
        caller closes it with `release`. SessionError (infra) when none could be prepared."""
        started = time.monotonic()
        key = str(task.repo)
        with self._lock:
            spares = self._spares.setdefault(key, deque())
            self._spares.move_to_end(key)
            session = None
            while spares and session is None:
                candidate = spares.popleft()
                session = candidate if candidate.alive else self._discard(candidate)
        warm = session is not None
        if session is None:
            future: Future = Future()
            self._jobs.put((0, next(self._order), task, future))
            session = future.result()
        WORKSPACE_WAIT.labels(str(warm).lower()).observe(time.monotonic() - started)
        self._refill(task)
        return session

    def release(self, session: SandboxSession) -> None:
        """Close a session `acquire` gave out (its uid goes back to the host-wide pool)."""
        session.close()

    def spares(self, task: SweTask) -> int:
        """Prepared sessions waiting for `task`."""
        with self._lock:
            return len(self._spares.get(str(task.repo), ()))

    def close(self) -> None:
        """Close every spare and stop the spawner (sessions given out stay their holders')."""
        with self._lock:
            self._closed = True
            spares = [s for q in self._spares.values() for s in q]
            self._spares.clear()
        for _ in self._threads:
            self._jobs.put((-1, next(self._order), None, None))
        for thread in self._threads:
            thread.join(timeout=30)
        while not self._jobs.empty():  # episodes still waiting are told the pool is closing
            waiting = self._jobs.get()[3]
            if waiting is not None:
                waiting.set_exception(SessionError("the workspace pool is closing", infra=True))
        for session in spares:
            self.release(session)

    # -- internals ------------------------------------------------------------------------------
    def _discard(self, session: SandboxSession) -> None:
        """Drop a dead spare (under the lock)."""
        session.close()

    def _refill(self, task: SweTask) -> None:
        key = str(task.repo)
        with self._lock:
            if self._closed:
                return
            missing = self.warm - len(self._spares.get(key, ())) - self._refilling.get(key, 0)
            self._refilling[key] = self._refilling.get(key, 0) + max(0, missing)
            evicted = []
            while len(self._spares) > self.max_tasks:
                _, old = self._spares.popitem(last=False)
                evicted += old
        for session in evicted:
            self.release(session)
        for _ in range(max(0, missing)):
            self._jobs.put((1, next(self._order), task, None))

    def _start(self, task: SweTask) -> SandboxSession:
        session = SandboxSession.start(self.sandbox, self.python, self.snapshots.get(task.repo),
                                       timeout_s=self.prepare_timeout_s)
        WORKSPACE_PREPARE.observe(session.prepare_s)
        return session

    def _spawner(self) -> None:
        while True:
            _, _, task, future = self._jobs.get()
            if task is None:  # closing
                return
            if future is not None:  # an episode waits for it
                try:
                    future.set_result(self._start(task))
                except BaseException as exc:  # handed to the waiting episode (SessionError: infra)
                    future.set_exception(exc if isinstance(exc, SessionError) else SessionError(str(exc), infra=True))
                continue
            key = str(task.repo)
            try:
                session = self._start(task) if not self._closed else None
            except Exception as exc:  # fault boundary: a spare that fails is prepared again when needed
                log.warning("preparing a spare workspace for %s failed: %s", task.instance_id, exc)
                session = None
            with self._lock:
                self._refilling[key] = max(0, self._refilling.get(key, 0) - 1)
                keep = session is not None and not self._closed and key in self._spares
                if keep:
                    self._spares[key].append(session)
            if session is not None and not keep:
                self.release(session)
