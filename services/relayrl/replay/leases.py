"""Keeping leases alive: a thread that renews the stream entries a process is still working on.

Every hand-off through the queue is leased (DESIGN.md): an entry idle past its consumer's timeout
is taken over by another consumer, which is how the work of a dead consumer is recovered. Work
that takes longer than the timeout while its process is alive must therefore renew its lease,
or it is done twice. `LeaseKeeper` is that renewal for one stream's consumer group: entries are
`hold`-ed with the consumer that owns them and renewed every `period_s` until `release`d.
`ReplayQueue.renew` checks ownership, so a renewal never takes back an entry another consumer has
taken over meanwhile, and one keeper can renew on behalf of several consumers (the reward service
keeps the prompt leases of the actors whose groups wait for rewards).

The renewals live exactly as long as the keeper's process: when it dies they stop and the leases
expire, as they must. Redis being away (`relayrl.retry.is_transient`) is logged and tried again at
the next period (a missed renewal only risks the work being done twice). Any other error stops
the keeper and is kept as its `failure()`, for the owning service to exit on.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from relayrl.replay.base import ReplayQueue
from relayrl.retry import is_transient

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews held entries of `stream`'s consumer group `group` every `period_s` seconds."""

    def __init__(self, queue: ReplayQueue, stream: str, group: str, period_s: float, name: str) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        self.queue, self.stream, self.group, self.period_s, self.name = queue, stream, group, period_s, name
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # entry id -> consumer that owns its lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def hold(self, entry_id: str, consumer: str) -> None:
        """Renew `entry_id`'s lease, owned by `consumer`, until it is released (a second `hold`
        names its new owner: the entry was taken over)."""
        with self._lock:
            self._held[entry_id] = consumer

    def release(self, entry_id: str) -> None:
        """Stop renewing `entry_id` (done, or given up so that its lease expires)."""
        with self._lock:
            self._held.pop(entry_id, None)

    def held(self) -> dict[str, str]:
        """Entry id -> owner of every lease being renewed."""
        with self._lock:
            return dict(self._held)

    def renew(self) -> int:
        """Renew every held lease now, one call per owner; return how many entries were asked for."""
        by_owner: dict[str, list[str]] = defaultdict(list)
        for entry_id, consumer in self.held().items():
            by_owner[consumer].append(entry_id)
        for consumer, ids in by_owner.items():
            self.queue.renew(self.stream, self.group, consumer, ids)
        return sum(map(len, by_owner.values()))

    def start(self) -> LeaseKeeper:
        """Renew in a background thread until `stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"{self.name}-leases", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (held leases then expire unless acknowledged)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def failure(self) -> BaseException | None:
        """The error that stopped the renewals, or None while they run (or were stopped cleanly)."""
        return self._error

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.renew()
            except Exception as exc:  # retry boundary: a missed renewal only risks the work being redone
                if not is_transient(exc):
                    log.error("%s: renewing leases on %s failed; renewals stop", self.name, self.stream, exc_info=exc)
                    self._error = exc
                    return
                log.warning("%s: renewing leases on %s failed: %s", self.name, self.stream, exc)
