"""The trusted judge inside the sandbox: runs the untrusted program per test case and decides.

Started first in the job's sandbox (pid 1 of its pid namespace under bubblewrap), it reads the
job (program, tests) from stdin, makes itself non-dumpable (so a process of the same uid cannot
read its memory or open its file descriptors through /proc), and closes its verdict pipe to
every process it starts. As pid 1 it cannot be killed from inside its namespace. The program
never runs in this process:

- stdio tests: the program runs as a child process per case, with the case's stdin; this process
  compares its captured stdout (capped) with the expected lines, which the program never sees.
- assert tests: the test code (trusted: from the dataset) runs here, calling the entry point in a
  separate candidate process through `candidate.py`; only plain data comes back (`wire.py`), so
  no monkey-patching, `exit(0)`, stack walking, always-equal object or printed marker reaches
  the checker. A candidate that dies, hangs or exits fails the case even when the test code
  swallowed the error.

Between cases every other process in the namespace is killed and /tmp is emptied. The verdict,
one JSON document, goes to the verdict pipe only.
"""

import builtins
import ctypes
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire

PR_SET_DUMPABLE = 4


class CandidateBroken(BaseException):
    """The candidate died, hung or misbehaved (BaseException: `except Exception` in a test
    cannot swallow it)."""


def reset_namespace(job):
    """Kill every process but this one (pid 1 only: elsewhere -1 would reach other jobs)."""
    if os.getpid() == 1:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
    for name in os.listdir(job["workdir"]):
        path = os.path.join(job["workdir"], name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def spawn(job, argv, **kwargs):
    proc = subprocess.Popen(argv, cwd=job["workdir"], close_fds=True, start_new_session=True, **kwargs)
    try:  # the OOM killer picks the program, never the judge
        with open("/proc/%d/oom_score_adj" % proc.pid, "w") as f:
            f.write("1000")
    except OSError:
        pass
    return proc


def run_stdio_case(job, case):
    program = os.path.join(job["workdir"], "main.py")
    with open(program, "w") as f:
        f.write(job["program"])
    proc = spawn(job, [job["python"], "-I", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)
    cap, deadline = job["max_output_bytes"], time.monotonic() + job["timeout_s"]
    out, err, status = bytearray(), bytearray(), None
    pending = memoryview(case.get("stdin", "").encode())
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    while len(sel.get_map()) and status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            status = "timeout"
            break
        for key, _ in sel.select(left):
            if key.fileobj is proc.stdin:
                try:
                    pending = pending[os.write(proc.stdin.fileno(), pending[:65536]):]
                except BrokenPipeError:
                    pending = pending[:0]
                if not pending:
                    sel.unregister(proc.stdin)
                    proc.stdin.close()
                continue
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
            key.data.extend(chunk)
            if len(key.data) > cap:
                status = "output"
    sel.close()
    if status is None:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = "timeout"
    if status is not None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    got = bytes(out[:cap]).decode("utf-8", "replace")
    detail = {"stdout": got[:300], "stderr": bytes(err[:cap]).decode("utf-8", "replace")[-300:]}
    if status is None and proc.returncode != 0:
        status = "killed" if proc.returncode < 0 else "error"
        detail["exit_code"] = proc.returncode
    if status is None:
        expected = [line.rstrip() for line in case.get("stdout", "").rstrip().splitlines()]
        actual = [line.rstrip() for line in got.rstrip().splitlines()]
        status = "pass" if actual == expected else "fail"
        if status == "fail":
            detail["reason"] = "%d lines expected, %d printed" % (len(expected), len(actual)) \
                if len(expected) != len(actual) else "line %d differs" % next(
                    i + 1 for i, (a, b) in enumerate(zip(actual, expected)) if a != b)
    return status, detail


class Candidate:
    """The entry point of the program, called across processes."""

    def __init__(self, job):
        self.job, self.proc, self.deadline, self.broken = job, None, None, None

    def start(self):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        candidate = os.path.join(os.path.dirname(os.path.abspath(__file__)), "candidate.py")
        self.proc = spawn(self.job, [self.job["python"], "-I", candidate, str(req_r), str(rep_w)],
                          pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        os.close(req_r)
        os.close(rep_w)
        self.requests, self.replies = req_w, rep_r
        self._answer({"prelude": self.job.get("prelude", ""), "program": self.job["program"],
                      "entry_point": self.job["entry_point"]}, "loading the program")

    def stop(self):
        if self.proc is not None:
            for fd in (self.requests, self.replies):
                os.close(fd)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None

    def _answer(self, message, what):
        try:
            wire.send(self.requests, message)
            reply = wire.receive(self.replies, self.deadline)
        except TimeoutError:
            self.broken = "timeout"
            raise CandidateBroken("the candidate did not answer in time (%s)" % what) from None
        except (EOFError, OSError, ValueError) as exc:
            self.broken = self.broken or "candidate exited or broke the channel"
            raise CandidateBroken("the candidate process ended (%s): %r" % (what, exc)) from None
        if "raise" in reply:
            name, message = reply["raise"]
            cls = getattr(builtins, str(name), None)
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                cls = RuntimeError
            raise cls("%s (raised by the candidate: %s)" % (message, name))
        return reply

    def __call__(self, *args, **kwargs):
        if self.proc is None:
            self.start()
        reply = self._answer({"args": [wire.encode(a) for a in args],
                              "kwargs": {k: wire.encode(v) for k, v in kwargs.items()}}, "a call")
        if "value" not in reply:
            self.broken = "bad reply"
            raise CandidateBroken("the candidate sent a malformed reply")
        return wire.decode(reply["value"])


def run_assert_cases(job):
    namespace = {"__name__": "checker"}
    exec(compile(job.get("prelude", ""), "prelude.py", "exec"), namespace)
    cases = []
    if job.get("test"):
        exec(compile(job["test"], "test.py", "exec"), namespace)
        if "check" in namespace:
            cases.append(("check", "check(%s)" % job["entry_point"]))
    cases += [(src.strip()[:120], src) for src in job.get("asserts", [])]
    for name, source in cases:
        candidate = Candidate(job)
        namespace[job["entry_point"]] = namespace["candidate"] = candidate
        candidate.deadline = time.monotonic() + job["timeout_s"]
        detail = {}
        try:
            exec(compile(source, "case.py", "exec"), namespace)
            status = "pass"
        except CandidateBroken as exc:
            status, detail["reason"] = "error", str(exc)
        except Exception as exc:  # the test failed: an assert or an error in the candidate's result
            status, detail["reason"] = "fail", "%s: %s" % (type(exc).__name__, str(exc)[:300])
        if candidate.broken:  # even when the test code swallowed the error
            status = "timeout" if candidate.broken == "timeout" else "error"
            detail.setdefault("reason", candidate.broken)
        candidate.stop()
        yield name, status, detail


def main():
    verdict_fd = int(sys.argv[1])
    os.set_inheritable(verdict_fd, False)
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    job = json.loads(sys.stdin.buffer.read())
    job.setdefault("workdir", os.getcwd())
    results, stopped = [], False
    if job["kind"] == "stdio":
        cases = ((str(i), lambda c=c: run_stdio_case(job, c)) for i, c in enumerate(job["cases"]))
        iterator = ((name, *run()) for name, run in cases)
    else:
        iterator = run_assert_cases(job)
    started = time.monotonic()
    for name, status, detail in iterator:
        results.append({"name": name, "status": status, "detail": detail,
                        "duration_s": round(time.monotonic() - started, 4)})
        started = time.monotonic()
        reset_namespace(job)
        if status != "pass" and job.get("early_stop", True):
            stopped = True
            break
    with os.fdopen(verdict_fd, "w") as verdict:
        verdict.write(json.dumps({"cases": results, "stopped_early": stopped}))


if __name__ == "__main__":
    main()
