"""One retry policy for every service: which errors mean "a peer is away", and how to wait for it.

Services retry at their fault-tolerance boundaries (the learner while Redis restarts, an actor
while the reward service is saturated, a slow-lane worker while Redis is unreachable). They all
ask `is_transient` the same question, so a bug — a `KeyError`, a malformed message, a wrong auth
token — is never mistaken for an outage and retried forever: it propagates and ends the process,
where the launcher or the orchestrator sees it.

Transient: Redis unreachable, restarting or loading its data; a gRPC peer unavailable, over its
deadline or pushing back (RESOURCE_EXHAUSTED, ABORTED); a socket refused, reset or timed out; a
host name that does not resolve yet or a network that is unreachable (a peer's pod starting); and
any `TransientError`, which a component raises to say "come back later" (the reward service's
`Saturated` and `Closed`, a weight version evicted while it was being pulled).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TransientError(Exception):
    """A peer asks the caller to retry later; nothing is wrong with the request itself."""


def _redis_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def _grpc_transient_codes() -> frozenset:
    import grpc

    c = grpc.StatusCode
    return frozenset({c.UNAVAILABLE, c.DEADLINE_EXCEEDED, c.RESOURCE_EXHAUSTED, c.ABORTED})


def is_transient(exc: BaseException) -> bool:
    """True when `exc` means a peer is away or busy (retry with backoff), False for anything else."""
    if isinstance(exc, (TransientError, ConnectionError, TimeoutError, socket.gaierror)):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return True
    if isinstance(exc, _redis_errors()):
        return True
    import grpc

    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code() in _grpc_transient_codes()
    return False


class Backoff:
    """Exponential backoff for a retry loop: `wait()` after a transient failure, `reset()` after
    a success. `wait` returns early (True) when `stop` is set."""

    def __init__(self, first_s: float = 0.2, max_s: float = 5.0, stop: threading.Event | None = None) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError("backoff needs 0 < first_s <= max_s")
        self.first_s, self.max_s, self.stop = first_s, max_s, stop
        self.next_s = first_s

    def reset(self) -> None:
        self.next_s = self.first_s

    def wait(self) -> bool:
        """Sleep the current delay, then double it (up to max_s); True when stopped meanwhile."""
        delay, self.next_s = self.next_s, min(self.next_s * 2, self.max_s)
        if self.stop is not None:
            return self.stop.wait(delay)
        time.sleep(delay)
        return False


def retry(fn: Callable[[], T], what: str, log: logging.Logger, first_s: float = 0.2, max_s: float = 5.0,
          stop: threading.Event | None = None) -> T:
    """Call `fn` until it returns, backing off after each transient error (logged as a warning);
    any other error propagates at once. With `stop`, a set event ends the retries with the last
    transient error. Only retry operations that are idempotent."""
    backoff = Backoff(first_s, max_s, stop)
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s: %s; retrying in %.1f s", what, exc, backoff.next_s)
            if backoff.wait():
                raise


def run_until_stopped(step: Callable[[], object], stop: threading.Event, who: str, log: logging.Logger,
                      idle_s: float = 0.0) -> None:
    """A service's main loop: call `step` until `stop` is set, waiting `idle_s` after a step that
    did nothing (a falsy result). A transient error is logged and retried with backoff (0.5 s up
    to 10 s, cut short by `stop`); anything else is a bug and propagates, ending the service."""
    backoff = Backoff(0.5, 10.0, stop=stop)
    while not stop.is_set():
        try:
            if not step() and idle_s:
                stop.wait(idle_s)
            backoff.reset()
        except Exception as exc:  # fault-tolerance boundary: a peer restarting must not end the service
            if not is_transient(exc):
                raise
            log.warning("%s: %s; retrying in %.1f s", who, exc, backoff.next_s)
            backoff.wait()
