"""One sandbox job once started: feeding it, reading what it writes, killing it, cleaning up.

`Sandbox.start` (sandbox.py) sets a job up under every layer and hands back a `StartedJob`;
`finish` feeds its stdin, reads stdout, stderr and the verdict pipe concurrently (each capped:
past the cap the job is killed, `kill_reason="output"`), kills the whole job at its deadline (its
pid-namespace init, which makes the kernel kill every process in the namespace, and whatever is
left in its cgroup), and `close` releases what it held: pipes, cgroup, the weak mode's files and,
last, when every process of the job is dead, its uid lease.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from relayrl.reward.inside.pump import pump


@dataclass
class SandboxResult:
    """What a job did, as observed from outside."""

    exit_code: int | None
    """The command's exit status (negative: killed by that signal); None when it never started."""
    stdout: bytes = b""
    stderr: bytes = b""
    verdict: bytes = b""
    """Bytes the trusted harness wrote to the verdict pipe."""
    kill_reason: str | None = None
    """Why the service killed the job: "timeout", "memory", "output"; None when it ended itself."""
    duration_s: float = 0.0
    error: str | None = None
    """Set when the sandbox itself failed (an infrastructure error, not the program's fault)."""
    details: dict = field(default_factory=dict)


class StartedJob:
    """A sandbox job whose first process runs under every layer (`Sandbox.start`): `finish`
    gives it its stdin and collects what it did; `close` kills whatever is left of it and
    releases its pipes, cgroup, files and uid (`finish` does too; idempotent)."""

    def __init__(self, max_output_bytes: int) -> None:
        self.max_output_bytes = max_output_bytes
        self.proc: subprocess.Popen | None = None
        self.child: int | None = None
        self.cgroup = self.lease = self.workdir = None
        self.verdict_r: int | None = None
        self.opened: list[int] = []
        self.failed: SandboxResult | None = None
        """Set when the sandbox did not start (bwrap's error): what `finish` returns."""

    def finish(self, stdin: bytes = b"", timeout_s: float = 10.0) -> SandboxResult:
        """Feed `stdin`, collect outputs and the verdict pipe, kill the whole job at `timeout_s`."""
        try:
            if self.failed is not None:
                return self.failed
            return communicate(self.proc, self.child, self.cgroup, stdin, self.verdict_r, time.monotonic(), timeout_s,
                               self.max_output_bytes)
        finally:
            self.close()

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None and not stream.closed:
                    stream.close()
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup.remove()
            self.cgroup = None
        for fd in self.opened:
            os.close(fd)
        self.opened.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self.lease is not None:  # last: every process of the job is dead
            self.lease.release()
            self.lease = None


def communicate(proc: subprocess.Popen, child: int, cgroup, stdin: bytes, verdict_r: int, started: float,
                timeout_s: float, cap: int) -> SandboxResult:
    """Feed `stdin`; read stdout, stderr and the verdict pipe concurrently, each up to `cap` bytes
    (past it the job is killed); kill the whole job at `timeout_s` after `started`."""
    deadline = started + timeout_s
    bufs, kill_reason = pump(proc.stdin, stdin, (proc.stdout.fileno(), proc.stderr.fileno(), verdict_r), deadline, cap)
    if kill_reason is not None:
        kill_tree(child, cgroup)
    try:
        proc.wait(timeout=max(0.5, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_reason = kill_reason or "timeout"
        kill_tree(child, cgroup)
        proc.wait()
    if kill_reason is None and cgroup is not None and cgroup.oom_killed():
        kill_reason = "memory"
    proc.stdin.close()
    out, err, verdict = (bytes(bufs[k][:cap]) for k in (proc.stdout.fileno(), proc.stderr.fileno(), verdict_r))
    proc.stdout.close()
    proc.stderr.close()
    return SandboxResult(proc.returncode, out, err, verdict, kill_reason, time.monotonic() - started)


def kill_tree(child: int, cgroup) -> None:
    """Kill the job's init (the kernel then kills its whole pid namespace) and its cgroup."""
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if cgroup is not None:
        cgroup.kill_all()
