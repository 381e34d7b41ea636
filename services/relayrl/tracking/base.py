"""The one small interface every experiment tracker implements, and the fan-out the learner uses.

A `Tracker` takes a run's resolved config once, then per step a dict of scalars and a few
distributions, now and then a table of sample completions, and the held-out evaluations, which
have their own x axis (the version evaluated, which the learner has usually passed by the time
the result arrives). `Trackers` sends every call to each configured tracker on one background
thread: the learner's step never waits for a tracker's disk writes (MLflow's file store appends
to one file per metric). A tracker that fails fails the learner: its exception is raised from the
learner's next call (or from `close`), not swallowed.
"""

from __future__ import annotations

import logging
import queue
import threading
from abc import ABC, abstractmethod

log = logging.getLogger("relayrl.tracking")


class MissingExtra(RuntimeError):
    """A tracker's package is not installed; the message names the extra that installs it."""


class Tracker(ABC):
    """One experiment tracker (TensorBoard, W&B, MLflow); every method is called from one thread."""

    name = "tracker"

    @abstractmethod
    def log_config(self, config: dict) -> None:
        """The run's resolved config (nested, JSON-ready)."""

    @abstractmethod
    def log_step(self, step: int, scalars: dict[str, float], histograms: dict[str, list[float]]) -> None:
        """One learner step: named scalars and distributions (raw values, the tracker bins them)."""

    @abstractmethod
    def log_table(self, step: int, name: str, columns: list[str], rows: list[list]) -> None:
        """A table (sample completions) at `step`."""

    @abstractmethod
    def log_eval(self, version: int, scalars: dict[str, float]) -> None:
        """Held-out evaluation figures of policy `version` (their x axis; may be below the current step)."""

    def close(self) -> None:
        """Flush and finish the run."""


_STOP = object()


class Trackers:
    """Fans calls out to `trackers` on a background thread, in order; `close` drains and joins."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers
        self._calls: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="trackers", daemon=True)
        if trackers:
            self._thread.start()

    def _work(self) -> None:
        while (call := self._calls.get()) is not _STOP:
            method, args = call
            if self._error is not None:
                continue  # the learner hears of the first failure; later calls are dropped
            try:
                for tracker in self.trackers:
                    getattr(tracker, method)(*args)
            except BaseException as exc:  # handed to the learner's thread, which raises it
                self._error = exc

    def _put(self, method: str, *args) -> None:
        self._raise()
        if self.trackers:
            self._calls.put((method, args))

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"an experiment tracker failed: {error!r}") from error

    def log_config(self, config: dict) -> None:
        self._put("log_config", config)

    def log_step(self, step: int, scalars: dict[str, float], histograms: dict[str, list[float]]) -> None:
        self._put("log_step", step, scalars, histograms)

    def log_table(self, step: int, name: str, columns: list[str], rows: list[list]) -> None:
        self._put("log_table", step, name, columns, rows)

    def log_eval(self, version: int, scalars: dict[str, float]) -> None:
        self._put("log_eval", version, scalars)

    def close(self) -> None:
        """Finish every queued call, close every tracker, raise a failure if there was one."""
        if self.trackers and self._thread.is_alive():
            self._calls.put(_STOP)
            self._thread.join()
        try:
            self._raise()
        finally:
            for tracker in self.trackers:
                tracker.close()
