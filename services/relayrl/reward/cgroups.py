"""Per-job cgroups for the sandbox: a memory limit and a process-count limit on a whole job.

rlimits bound each process; a cgroup bounds the job (every process it forks, tmpfs pages it
writes included), and lists its processes so that all of them can be killed at the end. Both
hierarchies are supported: cgroup v2 (one unified tree, `memory.max`, `pids.max`,
`cgroup.kill`) and cgroup v1 (separate `memory` and `pids` trees, `memory.limit_in_bytes`).
Job cgroups are created under the cgroup this process is in, so limits placed on the service
still bound its jobs.

`probe()` says what the host allows; where it allows nothing (no write access, no controllers)
the sandbox runs without cgroups and reports it in its health (`cgroups: "none"`). What this does
not cover: CPU time (an rlimit and the wall-clock deadline bound it) and disk I/O bandwidth.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the hierarchy of `controller` (None: the v2 tree)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller in names.split(",")):
            return path
    return None


def _writable_dir(base: Path) -> bool:
    probe = base / f"relayrl-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


class JobCgroup:
    """One job's cgroup(s): `add(pid)` before the job forks, `kill_all()` and `remove()` after."""

    def __init__(self, dirs: dict[str, Path], version: str) -> None:
        self.dirs, self.version = dirs, version

    def add(self, pid: int) -> None:
        for path in set(self.dirs.values()):
            (path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in set(self.dirs.values()):
            try:
                found |= {int(p) for p in (path / "cgroup.procs").read_text().split()}
            except FileNotFoundError:
                pass
        return found

    def oom_killed(self) -> bool:
        """True when the kernel's OOM killer killed a process of this job."""
        path = self.dirs.get("memory")
        if path is None:
            return False
        name = "memory.events" if self.version == "v2" else "memory.oom_control"
        try:
            for line in (path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except FileNotFoundError:
            pass
        return False

    def kill_all(self, timeout_s: float = 5.0) -> None:
        """SIGKILL every process in the job until none is left (a fork racing the kill is caught
        on the next pass)."""
        if self.version == "v2" and (self.dirs["memory"] / "cgroup.kill").exists():
            (self.dirs["memory"] / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)

    def remove(self) -> None:
        """Delete the cgroup(s); retried briefly while the kernel finishes reaping."""
        for path in set(self.dirs.values()):
            for _ in range(500):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: a killed process is not reaped yet
                    time.sleep(0.002)


class Cgroups:
    """Creates job cgroups on this host; `mode` is "v2", "v1" or "none"."""

    def __init__(self, enabled: bool = True) -> None:
        self.bases: dict[str, Path] = {}
        self.mode = "none"
        if enabled:
            self._probe()

    def _probe(self) -> None:
        unified = ROOT / "cgroup.controllers"
        if unified.exists():  # pure v2 host
            own = _own_path(None)
            base = ROOT / (own or "/").lstrip("/")
            controllers = set((base / "cgroup.controllers").read_text().split()) if base.exists() else set()
            if {"memory", "pids"} <= controllers and _writable_dir(base):
                self.bases, self.mode = {"memory": base, "pids": base}, "v2"
            return
        bases = {}
        for controller in ("memory", "pids"):
            own = _own_path(controller)
            base = ROOT / controller / (own or "/").lstrip("/")
            if own is not None and base.is_dir() and _writable_dir(base):
                bases[controller] = base
        if bases:
            self.bases, self.mode = bases, "v1"

    def create(self, memory_bytes: int, max_pids: int) -> JobCgroup | None:
        """A fresh cgroup with the limits set, or None where cgroups are unavailable."""
        if self.mode == "none":
            return None
        name = f"relayrl-job-{os.getpid()}-{next(_counter)}"
        if self.mode == "v2":
            path = self.bases["memory"] / name
            path.mkdir()
            job = JobCgroup({"memory": path, "pids": path}, "v2")
            (path / "memory.max").write_text(str(memory_bytes))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
            (path / "pids.max").write_text(str(max_pids))
            return job
        dirs = {c: base / name for c, base in self.bases.items()}
        for path in dirs.values():
            path.mkdir()
        job = JobCgroup(dirs, "v1")
        if "memory" in dirs:
            (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
            memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # no swapping past the limit either
                memsw.write_text(str(memory_bytes))
        if "pids" in dirs:
            (dirs["pids"] / "pids.max").write_text(str(max_pids))
        return job
