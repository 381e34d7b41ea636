"""Assert tests in the trusted judge: the test code runs here and calls the entry point, which
runs in a separate candidate process (`candidate.py`, forked by the zygote) (stdlib only).

Only inert data comes back from the candidate. Values cross in the plain-data wire format
(`wire.py`: exact types, NaN and colliding hashes opaque, hostile messages refused). An exception
the candidate raised is re-raised here as a fresh instance of a builtin `Exception` class of the
same name, with the candidate's message as text, so a test's own `except ValueError` still works;
but never as `StopIteration` or `StopAsyncIteration` (raised inside a test's `for` loop over
`map(candidate, ...)` or a generator they would end the loop silently and skip its asserts), nor
as anything outside `Exception` (`SystemExit`, `KeyboardInterrupt`, `GeneratorExit`): those, and
names that are not builtin exceptions, arrive as `RuntimeError`. A candidate that dies, hangs,
exits or sends a malformed message raises `CandidateBroken` (a BaseException: `except Exception`
in a test cannot swallow it) and fails the case even when the test code swallowed the error.
"""

import builtins
import os
import signal
import time

import wire
from zygote import ZygoteGone

_STEERING = (StopIteration, StopAsyncIteration)
RAISABLE = {name: cls for name, cls in vars(builtins).items()
            if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, _STEERING)}


class CandidateBroken(BaseException):
    """The candidate died, hung or misbehaved (BaseException: `except Exception` in a test
    cannot swallow it)."""


def inert_exception(raised):
    """The exception to raise in the checker for a candidate's {"raise": [name, message]}."""
    if type(raised) is not list or len(raised) != 2:
        raise CandidateBroken("the candidate sent a malformed exception")
    name, message = str(raised[0])[:100], str(raised[1])[:500]
    text = "%s (raised by the candidate: %s)" % (message, name)
    cls = RAISABLE.get(name, RuntimeError)
    try:
        return cls(text)
    except TypeError:  # a builtin whose constructor wants more (UnicodeDecodeError, ExceptionGroup)
        return RuntimeError(text)


class Candidate:
    """The entry point of the program, called across processes."""

    def __init__(self, job, zyg):
        self.job, self.zygote, self.pid, self.deadline, self.broken = job, zyg, None, None, None
        self.loaded = None

    def start(self):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self.requests, self.replies = req_w, rep_r
        try:
            self.pid = self.zygote.start("call", [req_r, rep_w], self.deadline)
        except ZygoteGone as exc:
            self._close()
            self.broken = "the program's processes stopped its runner"
            raise CandidateBroken(str(exc)) from None

    def _close(self):
        for fd in (self.requests, self.replies):
            try:
                os.close(fd)
            except OSError:
                pass

    def stop(self):
        if self.pid is None:
            return
        self._close()
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.zygote.wait(self.pid, time.monotonic() + 2.0)
        except ZygoteGone:
            pass
        self.pid = None

    def _answer(self, message, what):
        """The candidate's reply: ("value", decoded) or ("raise", the inert exception)."""
        try:
            if message is not None:
                wire.send(self.requests, message)
            reply = wire.receive(self.replies, self.deadline)
        except TimeoutError:
            self.broken = "timeout"
            raise CandidateBroken("the candidate did not answer in time (%s)" % what) from None
        except (EOFError, OSError, ValueError) as exc:  # ValueError: wire.WireError, a hostile message
            self.broken = self.broken or "candidate exited or broke the channel"
            raise CandidateBroken("the candidate process ended (%s): %r" % (what, exc)) from None
        if "raise" in reply:
            return "raise", reply["raise"]
        if message is None:
            return "ok", None
        try:
            return "value", wire.decode(reply["value"])
        except (KeyError, ValueError, RecursionError) as exc:
            self.broken = "bad reply"
            raise CandidateBroken("the candidate sent a malformed reply: %r" % exc) from None

    def __call__(self, *args, **kwargs):
        try:
            if self.pid is None:
                self.start()
                self.loaded = self._answer(None, "loading the program")
            kind, result = self.loaded
            if kind != "raise":
                kind, result = self._answer({"args": [wire.encode(a) for a in args],
                                             "kwargs": {k: wire.encode(v) for k, v in kwargs.items()}}, "a call")
            if kind == "raise":
                result = inert_exception(result)
        except CandidateBroken:
            raise
        except BaseException as exc:  # a fault of this proxy must never reach the test as an Exception
            self.broken = "judge error: %s: %s" % (type(exc).__name__, str(exc)[:200])
            raise CandidateBroken(self.broken) from None
        if kind == "raise":
            raise result
        return result


def load_tests(job):
    """Run the trusted prelude and test code (before anything untrusted: a failure here is the
    data's); returns their namespace and the cases: the test's `check(entry_point)`, each assert."""
    namespace = {"__name__": "checker"}
    exec(compile(job.get("prelude", ""), "prelude.py", "exec"), namespace)
    cases = []
    if job.get("test"):
        exec(compile(job["test"], "test.py", "exec"), namespace)
        if "check" in namespace:
            cases.append(("check", compile("check(%s)" % job["entry_point"], "case.py", "exec")))
    cases += [(src.strip()[:120], compile(src, "case.py", "exec")) for src in job.get("asserts", [])]
    return namespace, cases


def run_assert_cases(job, zyg, namespace, cases):
    """Yield (name, status, detail) per case."""
    for name, code in cases:
        candidate = Candidate(job, zyg)
        namespace[job["entry_point"]] = namespace["candidate"] = candidate
        candidate.deadline = time.monotonic() + job["timeout_s"]
        detail = {}
        try:
            exec(code, namespace)
            status = "pass"
        except CandidateBroken as exc:
            status, detail["reason"] = "error", str(exc)
        except Exception as exc:  # the test failed: an assert or an error in the candidate's result
            status, detail["reason"] = "fail", "%s: %s" % (type(exc).__name__, str(exc)[:300])
        finally:
            candidate.stop()
        if candidate.broken:  # even when the test code swallowed the error
            status = "timeout" if candidate.broken == "timeout" else "error"
            detail.setdefault("reason", candidate.broken)
        yield name, status, detail
