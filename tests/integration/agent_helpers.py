"""What the agent tests share: the processes of episode workspaces still alive on this host."""

from __future__ import annotations

import time
from pathlib import Path


def sandbox_processes() -> list[tuple[int, str]]:
    """(pid, command line) of every live process of an episode workspace: the workspace server
    (`/sandbox/shell.py`) and the bubblewrap that started it; what a model's command started dies
    with its server's pid namespace, so it is gone when these are."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (proc / "status").read_text().splitlines() if line.startswith("State:")), "")
        except OSError:  # it ended while we looked
            continue
        if "/sandbox/shell.py" in cmdline and "zombie" not in state:
            found.append((int(proc.name), cmdline.strip()))
    return found


def wait_for(predicate, timeout_s: float = 20.0) -> bool:
    """Poll `predicate` until it holds or `timeout_s` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())
