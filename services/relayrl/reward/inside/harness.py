"""The trusted judge inside the sandbox: runs the untrusted program per test case and decides.

Started first in the job's sandbox (pid 1 of its pid namespace under bubblewrap) as
`python3 -I -S harness.py VERDICT_FD`. Before it reads anything it restores SIGINT's default
disposition (pid 1 of a namespace receives from inside it only signals it handles: now none, so
the program, which runs as the same uid, cannot interrupt it), makes itself non-dumpable (a
process of the same uid cannot read its memory or descriptors through /proc), keeps its verdict
pipe from every process it starts, and forks the candidate zygote (`zygote.py`), which therefore
never sees the job. Then it reads the job (marshal, from the trusted service) from stdin.

- stdio tests: the zygote forks a child per case, fed the case's stdin; this process compares its
  captured stdout (capped) with the expected lines, which the program never sees. The program
  text never touches the filesystem the program can write (/tmp is the program's: it owns it).
- assert tests: the test code (trusted: from the dataset) runs here, calling the entry point in a
  candidate process (`checker.py`); only inert data comes back.

Between cases every other process but the zygote is killed and /tmp is emptied (best effort).

The judge always writes a verdict, as JSON lines on the verdict pipe: `{"event": "untrusted"}`
just before the program can first run, then `{"cases": [...], "stopped_early": ...}`. Whatever
goes wrong after that line is the program's doing (only it shares the sandbox with the judge):
a case the judge cannot run (its pipes, its fork, its deadline) is that case's `error`. A failure
before it (a malformed job, a missing module) is `{"error": "..."}`: the service's problem.
"""

import _signal
import marshal
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zygote
from pump import pump

PR_SET_DUMPABLE = 4
_ESCAPES = {i: "\\u%04x" % i for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def to_json(value):
    """JSON text of plain data (the json module costs the judge's start-up milliseconds)."""
    if value is None or value is True or value is False:
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if isinstance(value, (int, float)):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else "null"
    if isinstance(value, dict):
        return "{" + ",".join(to_json(str(k)) + ":" + to_json(v) for k, v in value.items()) + "}"
    return "[" + ",".join(to_json(v) for v in value) + "]"


class Verdict:
    """The verdict pipe: JSON lines (lone surrogates escaped, the rest UTF-8)."""

    def __init__(self, fd):
        self.fd = fd

    def write(self, message):
        data = (to_json(message) + "\n").encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(self.fd, data):]


def reset(job, zyg):
    """Kill every process but this one and the zygote (pid 1 only: elsewhere they could be
    anyone's), reap them, and empty the working directory."""
    if os.getpid() == 1:
        keep = {"1", str(zyg.pid)}
        for _ in range(2000):
            others = [int(p) for p in os.listdir("/proc") if p.isdigit() and p not in keep]
            for pid in others:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
            if not others:
                break
            time.sleep(0.001)
    empty_dir(job["workdir"])


def empty_dir(top):
    """Delete what the program left in `top`: through directory descriptors (no path grows past
    PATH_MAX), at most 64 levels deep and 100 000 entries. Never raises: leftovers only hurt the
    program's own later cases."""
    budget = [100_000]

    def clear(fd, depth):
        try:
            os.fchmod(fd, 0o700)
            names = os.listdir(fd)
        except OSError:
            return
        for name in names:
            budget[0] -= 1
            if budget[0] < 0:
                return
            try:
                os.unlink(name, dir_fd=fd)
                continue
            except IsADirectoryError:
                pass
            except OSError:
                continue
            if depth < 64:
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError:
                    continue
                try:
                    clear(sub, depth + 1)
                finally:
                    os.close(sub)
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                pass

    try:
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        clear(fd, 0)
    finally:
        os.close(fd)


def run_stdio_case(job, case, zyg):
    cap, deadline = job["max_output_bytes"], time.monotonic() + job["timeout_s"]
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = zyg.start("stdio", [in_r, out_w, err_w], deadline)
    except zygote.ZygoteGone as exc:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        return "error", {"reason": "the program's processes stopped its runner: %s" % exc}
    stdin = os.fdopen(in_w, "wb", buffering=0)
    bufs, status = pump(stdin, case.get("stdin", "").encode(), (out_r, err_r), deadline, cap)
    wait_status = zyg.wait(pid, deadline) if status is None else None
    if wait_status is None:
        status = status or "timeout"
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, 9)
            except OSError:
                pass
        wait_status = zyg.wait(pid, time.monotonic() + 2.0)
    stdin.close()
    for fd in (out_r, err_r):
        os.close(fd)
    got = bytes(bufs[out_r][:cap]).decode("utf-8", "replace")
    detail = {"stdout": got[:300], "stderr": bytes(bufs[err_r][:cap]).decode("utf-8", "replace")[-300:]}
    code = os.waitstatus_to_exitcode(wait_status) if wait_status is not None else None
    if status is None and code != 0:
        status = "killed" if code is not None and code < 0 else "error"
        detail["exit_code"] = code
    if status is None:
        expected = [line.rstrip() for line in case.get("stdout", "").rstrip().splitlines()]
        actual = [line.rstrip() for line in got.rstrip().splitlines()]
        status = "pass" if actual == expected else "fail"
        if status == "fail":
            detail["reason"] = "%d lines expected, %d printed" % (len(expected), len(actual)) \
                if len(expected) != len(actual) else "line %d differs" % next(
                    i + 1 for i, (a, b) in enumerate(zip(actual, expected)) if a != b)
    return status, detail


def judge(verdict, zyg):
    try:
        job = marshal.loads(sys.stdin.buffer.read())
        job.setdefault("workdir", os.getcwd())
        setup = {"kind": job["kind"], "program": job["program"], "prelude": job.get("prelude", ""),
                 "entry_point": job.get("entry_point")}
        if job["kind"] == "stdio":
            cases = [(str(i), lambda c=c: run_stdio_case(job, c, zyg)) for i, c in enumerate(job["cases"])]
        else:
            import checker

            cases = checker.run_assert_cases(job, zyg, *checker.load_tests(job))
        zyg.load(setup)
    except BaseException as exc:  # nothing untrusted has run: the judge's (or the job's) fault
        verdict.write({"error": "judge: %s: %s" % (type(exc).__name__, exc)})
        return
    verdict.write({"event": "untrusted"})
    results, stopped, started = [], False, time.monotonic()
    try:
        for name, status, detail in _guarded(cases):
            results.append({"name": name, "status": status, "detail": detail,
                            "duration_s": round(time.monotonic() - started, 4)})
            started = time.monotonic()
            reset(job, zyg)
            if status != "pass" and job.get("early_stop", True):
                stopped = True
                break
    finally:
        verdict.write({"cases": results, "stopped_early": stopped})


def _guarded(cases):
    """(name, status, detail) per case; a case the judge could not run is that case's `error`."""
    if isinstance(cases, list):
        for name, run in cases:
            try:
                yield (name, *run())
            except BaseException as exc:  # after the program ran: only it can have broken the case
                yield name, "error", {"reason": "judge: %s: %s" % (type(exc).__name__, str(exc)[:300])}
        return
    while True:
        try:
            item = next(cases)
        except StopIteration:
            return
        except BaseException as exc:  # the assert runner itself: likewise
            yield "judge", "error", {"reason": "judge: %s: %s" % (type(exc).__name__, str(exc)[:300])}
            return
        yield item


def non_dumpable():
    """prctl(PR_SET_DUMPABLE, 0) through `_ctypes` itself: the `ctypes` package costs the judge's
    start-up milliseconds (every job pays them) for classes this one call does not need."""
    import _ctypes

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class Function(_ctypes.CFuncPtr):
        _flags_, _restype_ = _ctypes.FUNCFLAG_CDECL, CInt

    prctl = Function(_ctypes.dlsym(_ctypes.dlopen(None), "prctl"))
    if prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError("prctl(PR_SET_DUMPABLE, 0) failed")


def main():
    verdict_fd = int(sys.argv[1])
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    os.set_inheritable(verdict_fd, False)
    non_dumpable()
    forked = zygote.fork(keep_in_judge=(0, verdict_fd))
    if isinstance(forked, zygote.Zygote):
        judge(Verdict(verdict_fd), forked)
        os._exit(0)  # the verdict is written (os.write): nothing left to flush, no finalization to pay
    zygote.run_case(*forked)  # a case child of the zygote: runs the program, exits with it


if __name__ == "__main__":
    main()
