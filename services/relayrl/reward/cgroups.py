"""Per-job cgroups for the sandbox: a memory limit and a process-count limit on a whole job.

rlimits bound each process; a cgroup bounds the job (every process it forks, tmpfs pages it
writes included), and lists its processes so that all of them can be killed at the end. Both
hierarchies are supported: cgroup v2 (one unified tree, `memory.max`, `pids.max`,
`cgroup.kill`) and cgroup v1 (separate `memory` and `pids` trees, `memory.limit_in_bytes`).
Job cgroups are created under the cgroup this process is in, so limits placed on the service
(a container's, a pod's) still bound its jobs.

cgroup v2 delegation: a v2 cgroup that holds processes cannot hand its controllers to children
("no internal processes"), so at start the service moves itself into a leaf of its own cgroup
(`<own>/relayrl-service`), enables `memory` and `pids` in `<own>/cgroup.subtree_control`, and
creates each job's cgroup beside that leaf (`<own>/relayrl-job-<pid>-<n>`). It never writes
above its own cgroup. A job's cgroup is made and given its limits as one step that removes what
it made if any write fails; the sandbox calls it inside the `try` whose `finally` kills and
removes it, and a start sweeps job cgroups left by a process that no longer exists (a service
killed by SIGKILL).

Where the host allows nothing (a read-only cgroupfs, as in an unprivileged container; the
controllers not delegated; other processes in the service's cgroup) jobs run without cgroups:
`mode` is "none" and `reason` says why (health, one log line). What this does not cover: CPU time
(an rlimit and the wall-clock deadline bound it) and disk I/O bandwidth.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
CONTROLLERS = ("memory", "pids")
SERVICE_LEAF = "relayrl-service"
_JOB = re.compile(r"^relayrl-job-(\d+)-\d+$")
_counter = itertools.count()


def own_paths(proc_cgroup: Path = PROC_CGROUP) -> dict[str, str]:
    """This process's cgroup path per v1 controller name, and under "" its v2 path."""
    paths = {}
    for line in proc_cgroup.read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            paths[name] = path
    return paths


def _writable_dir(base: Path) -> bool:
    probe = base / f"relayrl-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobCgroup:
    """One job's cgroup(s): `add(pid)` before the job forks, `kill_all()` and `remove()` after."""

    def __init__(self, dirs: dict[str, Path], version: str) -> None:
        self.dirs, self.version = dirs, version

    def _paths(self) -> list[Path]:
        return list(dict.fromkeys(self.dirs.values()))

    def add(self, pid: int) -> None:
        for path in self._paths():
            (path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self._paths():
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
        if self.version == "v2":
            kill = self._paths()[0] / "cgroup.kill"  # 5.14+: the kernel kills the whole cgroup at once
            if kill.exists():
                kill.write_text("1")
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)

    def remove(self) -> None:
        """Delete the cgroup(s); retried briefly while the kernel finishes reaping (EBUSY). A
        directory that cannot be removed for another reason is logged, not raised: this runs in
        the sandbox's `finally`, where an exception would replace the job's result."""
        for path in self._paths():
            for _ in range(500):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        log.warning("cannot remove job cgroup %s: %s", path, exc)
                        break
                    time.sleep(0.002)  # a killed process is not reaped yet
            else:
                log.warning("job cgroup %s still busy after its processes were killed", path)


class Cgroups:
    """Creates job cgroups on this host; `mode` is "v2", "v1" or "none" (then `reason` says why).

    `root` and `proc_cgroup` are the cgroupfs mount and this process's /proc/<pid>/cgroup (tests
    point them at a tree of their own); `controllers` are the ones each job gets (memory, pids)."""

    def __init__(self, enabled: bool = True, root: Path = ROOT, proc_cgroup: Path = PROC_CGROUP,
                 controllers: tuple[str, ...] = CONTROLLERS) -> None:
        self.root, self.proc_cgroup, self.controllers = Path(root), Path(proc_cgroup), tuple(controllers)
        self.bases: dict[str, Path] = {}
        self.mode = "none"
        self.reason: str | None = None if enabled else "disabled (reward.sandbox.use_cgroups: false)"
        if enabled:
            if (self.root / "cgroup.controllers").exists():
                self._probe_v2()
            else:
                self._probe_v1()
            self._sweep()

    # -- start-up -----------------------------------------------------------------------------
    def _probe_v2(self) -> None:
        """Pure v2: move into a leaf, enable the controllers for job cgroups beside it."""
        base = self.root / own_paths(self.proc_cgroup).get("", "/").lstrip("/")
        if base.name == SERVICE_LEAF and self._delegated(base.parent):
            base = base.parent  # this process moved itself already (another sandbox of the same service)
        offered = set((base / "cgroup.controllers").read_text().split()) if base.is_dir() else set()
        if missing := [c for c in self.controllers if c not in offered]:
            self.reason = (f"cgroup v2: {', '.join(missing)} not delegated to {base} (its parent's "
                           "cgroup.subtree_control lacks them)")
            return
        if not _writable_dir(base):
            self.reason = f"cgroup v2: {base} is not writable (a read-only cgroupfs, as in an unprivileged container)"
            return
        wanted = [c for c in self.controllers if c not in (base / "cgroup.subtree_control").read_text().split()]
        if wanted:
            leaf = base / SERVICE_LEAF
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            try:
                (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            except OSError as exc:  # EBUSY: other processes still sit in `base` itself
                others = sorted(set((base / "cgroup.procs").read_text().split()) - {str(os.getpid())})
                self.reason = (f"cgroup v2: cannot enable {', '.join(wanted)} in {base}/cgroup.subtree_control "
                               f"({exc.strerror}); processes still in {base}: {', '.join(others) or 'none'}")
                return
        self.bases, self.mode = {c: base for c in self.controllers}, "v2"

    def _delegated(self, base: Path) -> bool:
        try:
            return set(self.controllers) <= set((base / "cgroup.subtree_control").read_text().split())
        except FileNotFoundError:
            return False

    def _probe_v1(self) -> None:
        own = own_paths(self.proc_cgroup)
        refused = []
        for controller in self.controllers:
            if controller not in own:
                refused.append(f"{controller} (no v1 hierarchy)")
                continue
            base = self.root / controller / own[controller].lstrip("/")
            if base.is_dir() and _writable_dir(base):
                self.bases[controller] = base
            else:
                refused.append(f"{controller} ({base} not writable)")
        if self.bases:
            self.mode = "v1"
        if refused:
            self.reason = "cgroup v1: " + ", ".join(refused)

    def _sweep(self) -> None:
        """Kill and remove job cgroups of processes that no longer exist (a service SIGKILLed
        mid-job leaves them)."""
        for base in set(self.bases.values()):
            for path in base.iterdir():
                match = _JOB.match(path.name)
                if match and path.is_dir() and not _alive(int(match.group(1))):
                    job = JobCgroup({"job": path}, self.mode)
                    job.kill_all()
                    job.remove()
                    log.info("removed job cgroup %s left by a process that is gone", path)

    # -- jobs ---------------------------------------------------------------------------------
    def create(self, memory_bytes: int, max_pids: int) -> JobCgroup | None:
        """A fresh cgroup with the limits set, or None where cgroups are unavailable. What was
        made is removed again when setting a limit fails."""
        if self.mode == "none":
            return None
        name = f"relayrl-job-{os.getpid()}-{next(_counter)}"
        job = JobCgroup({c: base / name for c, base in self.bases.items()}, self.mode)
        try:
            for path in job._paths():
                path.mkdir()
            self._limit(job, memory_bytes, max_pids)
        except BaseException:
            job.remove()
            raise
        return job

    def _limit(self, job: JobCgroup, memory_bytes: int, max_pids: int) -> None:
        memory, pids = job.dirs.get("memory"), job.dirs.get("pids")
        if self.mode == "v2":
            if memory is not None:
                (memory / "memory.max").write_text(str(memory_bytes))
                for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    if (memory / name).exists():  # no swapping past the limit; an OOM kills the whole job
                        (memory / name).write_text(value)
            if pids is not None:
                (pids / "pids.max").write_text(str(max_pids))
            return
        if memory is not None:
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            memsw = memory / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # no swapping past the limit either
                memsw.write_text(str(memory_bytes))
        if pids is not None:
            (pids / "pids.max").write_text(str(max_pids))
