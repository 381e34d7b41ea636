"""Host-wide leases on the sandbox's job uids: one job per uid at a time, whatever process runs it.

Where the service runs as root, each sandbox job runs as a host uid of its own (`sandbox.py`).
Limits counted per uid (RLIMIT_NPROC counts every process of a uid on the host, across user
namespaces) then bound one job, and one job cannot signal another. That only holds if no two
jobs share a uid, including jobs of different processes on the same host: reward workers, the
reward service, evaluation, the CLI, test suites. Numbering slots per process does not give
that; a lease does. A job takes a uid from `[base, base + count)` by locking its file,
`<lock dir>/<uid>.lock`, with `flock(LOCK_EX | LOCK_NB)`, holds the lock for the job's life (until
every process of the job is dead) and releases it; the kernel releases it too when the holder
dies, so a killed service leaks no uid.

The lock directory is `/run/relayrl/sandbox-uids` (or, where /run is not writable,
`/tmp/relayrl-sandbox-uids`), owned by this user with mode 0700: nothing a job runs can reach or
hold a lock. What this does not cover: processes whose /run (or /tmp) differ, as in containers
without a user namespace of their own that share one host: give each such container its own
`reward.sandbox.uid_base` range.
"""

from __future__ import annotations

import fcntl
import os
import random
import stat
import time
from pathlib import Path

LOCK_DIRS = (Path("/run/relayrl/sandbox-uids"), Path("/tmp/relayrl-sandbox-uids"))


class UidsExhausted(RuntimeError):
    """Every uid of the range is leased (more concurrent jobs on this host than uids)."""


def lock_dir(candidates: tuple[Path, ...] = LOCK_DIRS) -> Path:
    """The first candidate directory that exists or can be made, checked to be private to us."""
    errors = []
    for path in candidates:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror}")
            continue
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise PermissionError(f"{path} is not a directory owned by uid {os.geteuid()} and writable only by it: "
                                  "another user could hold the sandbox's uid leases")
        return path
    raise OSError("no directory for the sandbox's uid leases: " + "; ".join(errors))


class UidLease:
    """One leased uid; `release()` (or the process's death) gives it back."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid, self._fd = uid, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor of the open file drops its flock
            self._fd = None

    def __enter__(self) -> UidLease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class UidPool:
    """Leases uids of `[base, base + count)` host-wide; thread-safe (each lease opens its own
    file description, and flock excludes other descriptions, in this process too)."""

    def __init__(self, base: int, count: int, directory: Path | None = None) -> None:
        if count < 1:
            raise ValueError("a uid range needs at least one uid")
        self.base, self.count = base, count
        self.directory = directory or lock_dir()

    def try_acquire(self) -> UidLease | None:
        """A free uid of the range, or None when all are leased."""
        start = random.randrange(self.count)  # spread processes over the range: fewer lock attempts
        for i in range(self.count):
            uid = self.base + (start + i) % self.count
            fd = os.open(self.directory / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return UidLease(uid, fd)
        return None

    def acquire(self, timeout_s: float = 60.0) -> UidLease:
        """A free uid, waiting up to `timeout_s` for one (UidsExhausted after that)."""
        deadline = time.monotonic() + timeout_s
        while (lease := self.try_acquire()) is None:
            if time.monotonic() > deadline:
                raise UidsExhausted(f"all {self.count} sandbox uids from {self.base} are leased on this host "
                                    "(reward.sandbox.uid_count)")
            time.sleep(0.01)
        return lease
