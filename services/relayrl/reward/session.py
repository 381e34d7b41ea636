"""A sandbox that lives for one agent episode: the task's repository in a private workspace, tool
calls sent to it one at a time, its final diff read back, and everything torn down at the end.

`SandboxSession.start` starts the workspace server (`reward/inside/shell.py`) as pid 1 of a fresh
sandbox (`Sandbox.start`: bubblewrap, no network, an unprivileged uid, rlimits, cgroup, seccomp)
with the task's cached snapshot as a read-only archive; the server extracts it into the sandbox's
own tmpfs and answers one request per line. Each request has a deadline (the command's own, which
the server enforces by killing the command's session, plus a grace for the reply); the episode's
budget is enforced by its caller (`rollout/episode.py`), which reads `tool_s`.

Torn down on every path: `close` (idempotent) kills the sandbox's pid namespace and cgroup; a
session that breaks is closed at once; bubblewrap's `--die-with-parent` (the parent-death signal)
kills the sandbox when the process that started it dies, so an actor killed mid-episode leaves
nothing running. The parent-death signal follows the *thread* that forked bwrap: start sessions
from a thread that outlives them (`rollout.workspaces` has one spawner thread for that).

Whose fault a broken session is (`SessionError.infra`): before the model ran any command in it
(start-up, extraction, a file request that got no reply) the infrastructure's, and the episode is
run again; once the model has run a command, the model's (it may have exhausted the sandbox's
memory or processes on purpose), and the episode ends as it stands. Replies are untrusted: a size
cap, one JSON object per line, anything else breaks the session.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from pathlib import Path

from relayrl.reward.sandbox import Sandbox
from relayrl.reward.sandbox_job import StartedJob
from relayrl.reward.uids import UidsExhausted

SHELL = Path(__file__).parent / "inside" / "shell.py"
REPLY_GRACE_S = 5.0
"""How long past a request's own deadline the host waits for its reply."""
MAX_REPLY_BYTES = 8 << 20


class SessionError(RuntimeError):
    """The session broke; `infra` says whether the infrastructure (not the model) is to blame."""

    def __init__(self, message: str, infra: bool) -> None:
        super().__init__(message)
        self.infra = infra


class SandboxSession:
    """One episode's sandbox, serving requests until `close`; not thread-safe (one episode)."""

    def __init__(self, job: StartedJob, prepare_s: float) -> None:
        self.job = job
        self.prepare_s = prepare_s
        """Seconds from starting the sandbox to the workspace being ready."""
        self.tool_s = 0.0
        """Seconds spent in requests so far (the episode's tool budget counts these)."""
        self.tainted = False
        """The model has run a command here: from now on a broken session is the model's fault."""
        self._buf = bytearray()

    @classmethod
    def start(cls, sandbox: Sandbox, python: str, archive: bytes, timeout_s: float = 60.0) -> SandboxSession:
        """A session with `archive` (an uncompressed tar of the repository) extracted and ready."""
        started = time.monotonic()
        files = {"/sandbox/shell.py": SHELL.read_bytes(), "/sandbox/repo.tar": archive}
        try:
            job = sandbox.start([python, "-I", "/sandbox/shell.py", "{verdict_fd}", "/sandbox/repo.tar"], files=files,
                                as_pid_1=True)
        except (OSError, UidsExhausted, subprocess.SubprocessError) as exc:
            raise SessionError(f"the sandbox did not start: {exc}", infra=True) from exc
        if job.failed is not None:
            job.close()
            raise SessionError(f"the sandbox did not start: {job.failed.error}", infra=True)
        session = cls(job, 0.0)
        try:
            ready = session._reply(started + timeout_s)
        except BaseException:  # nothing of the job outlives a start that failed, whatever failed
            session.close()
            raise
        if not ready.get("ready"):
            session.close()
            raise SessionError(f"the workspace was not prepared: {ready.get('error')}", infra=True)
        session.prepare_s = time.monotonic() - started
        return session

    @property
    def alive(self) -> bool:
        return self.job.proc is not None and self.job.proc.poll() is None

    def request(self, op: str, timeout_s: float, **args) -> dict:
        """Send one request and return its reply (a dict; `error` in it is the model's mistake).
        Raises SessionError when the session broke (it is closed then)."""
        if op == "bash":
            self.tainted = True
        started = time.monotonic()
        if not self.alive:
            raise self._broken("the sandbox is gone")
        line = json.dumps({"op": op, "timeout_s": timeout_s, **args}).encode() + b"\n"
        try:
            self.job.proc.stdin.write(line)
            self.job.proc.stdin.flush()
            return self._reply(started + timeout_s + REPLY_GRACE_S)
        except (BrokenPipeError, OSError) as exc:
            raise self._broken(f"the sandbox stopped taking requests: {exc}") from exc
        finally:
            self.tool_s += time.monotonic() - started

    def close(self) -> None:
        """Kill the sandbox and free everything it held (idempotent)."""
        self.job.close()

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------
    def _broken(self, why: str) -> SessionError:
        stderr = b""
        if self.job.proc is not None and self.job.proc.poll() is not None and self.job.proc.stderr is not None:
            os.set_blocking(self.job.proc.stderr.fileno(), False)
            stderr = self.job.proc.stderr.read(4096) or b""
        self.close()
        detail = f" ({stderr.decode(errors='replace').strip()[-300:]})" if stderr.strip() else ""
        return SessionError(why + detail, infra=not self.tainted)

    def _reply(self, deadline: float) -> dict:
        """The next reply line, parsed; SessionError on EOF, a deadline passed, or garbage."""
        fd = self.job.verdict_r
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._broken("the sandbox did not answer in time")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise self._broken("the sandbox closed its reply pipe")
                self._buf += chunk
                if len(self._buf) > MAX_REPLY_BYTES:
                    raise self._broken("the sandbox's reply is too long")
        finally:
            sel.close()
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise self._broken("the sandbox's reply is not a JSON object")
        return reply
