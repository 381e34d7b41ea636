"""The one retry policy: transient errors are retried with backoff, anything else propagates."""

from __future__ import annotations

import errno
import logging
import socket
import threading

import grpc
import pytest
import redis

from relayrl.retry import Backoff, TransientError, is_transient, retry

log = logging.getLogger("test")


class _Rpc(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code


@pytest.mark.parametrize("exc", [redis.ConnectionError("down"), redis.TimeoutError(), redis.BusyLoadingError(),
                                 ConnectionRefusedError(), TimeoutError(), TransientError("later"),
                                 socket.gaierror(-2, "Name or service not known"),
                                 OSError(errno.EHOSTUNREACH, "No route to host"),
                                 _Rpc(grpc.StatusCode.UNAVAILABLE), _Rpc(grpc.StatusCode.RESOURCE_EXHAUSTED),
                                 _Rpc(grpc.StatusCode.DEADLINE_EXCEEDED)])
def test_outages_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [KeyError("bug"), ValueError("bad input"), redis.ResponseError("WRONGTYPE"),
                                 _Rpc(grpc.StatusCode.UNAUTHENTICATED), _Rpc(grpc.StatusCode.INVALID_ARGUMENT),
                                 _Rpc(grpc.StatusCode.INTERNAL), FileNotFoundError()])
def test_bugs_and_bad_requests_are_not(exc):
    assert not is_transient(exc)


def test_retry_backs_off_through_outages_then_returns():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise redis.ConnectionError("restarting")
        return "ok"

    assert retry(flaky, "test", log, first_s=0.01, max_s=0.02) == "ok" and len(calls) == 3


def test_retry_lets_a_bug_through_at_once():
    calls = []

    def buggy():
        calls.append(1)
        raise KeyError("no such field")

    with pytest.raises(KeyError):
        retry(buggy, "test", log, first_s=0.01)
    assert len(calls) == 1


def test_a_stop_event_ends_the_retries():
    stop = threading.Event()
    stop.set()
    with pytest.raises(redis.ConnectionError):
        retry(lambda: (_ for _ in ()).throw(redis.ConnectionError("down")), "test", log, stop=stop)


def test_backoff_doubles_up_to_its_cap_and_resets():
    b = Backoff(0.001, 0.004)
    delays = []
    for _ in range(4):
        delays.append(b.next_s)
        b.wait()
    assert delays == [0.001, 0.002, 0.004, 0.004]
    b.reset()
    assert b.next_s == 0.001


def test_run_until_stopped_retries_outages_idles_when_idle_and_lets_bugs_through():
    from relayrl.retry import run_until_stopped

    stop, calls = threading.Event(), []

    def step():
        calls.append(len(calls))
        if len(calls) == 1:
            raise TransientError("peer away")  # retried after 0.5 s
        if len(calls) == 3:
            stop.set()
        return False  # nothing done: wait idle_s

    run_until_stopped(step, stop, "svc", log, idle_s=0.01)
    assert calls == [0, 1, 2]

    def buggy():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_until_stopped(buggy, threading.Event(), "svc", log)
