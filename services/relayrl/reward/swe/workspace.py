"""Cached repository snapshots: each task's `repo/` archived once, shipped into every job.

A job's workspace is made inside the sandbox by extracting the snapshot (an uncompressed tar held
in memory) into its private tmpfs: no copy of the repository on the host per sample, and the host
copy is never written. The cache is keyed by the task directory and a fingerprint of every file's
path, size and modification time, so editing a task invalidates its snapshot. Byte-code caches
(`__pycache__`, `*.pyc`) and `.git` are left out: the tests start from sources only.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
from collections import OrderedDict
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache"}


def _files(repo: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        out += [Path(root) / f for f in sorted(files) if not f.endswith(".pyc")]
    return out


def fingerprint(repo: Path) -> tuple:
    """What changes when any file of the repository does."""
    return tuple((str(p.relative_to(repo)), st.st_size, st.st_mtime_ns)
                 for p in _files(repo) for st in (p.lstat(),))


def archive(repo: Path) -> bytes:
    """The repository as an uncompressed tar, paths relative to its root, owners normalised."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(repo):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(repo)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return buf.getvalue()


class SnapshotCache:
    """Thread-safe LRU of repository archives (`size` of them)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[tuple, bytes]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, repo: Path) -> bytes:
        key = str(Path(repo).resolve())
        mark = fingerprint(Path(key))
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] == mark:
                self._items.move_to_end(key)
                self.hits += 1
                return item[1]
        data = archive(Path(key))
        with self._lock:
            self.misses += 1
            self._items[key] = (mark, data)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return data
