"""Running podman, podman-compose and `podman kube play` from the container tests.

scripts/containers.sh sets them up (images, a podman configuration of our own under
$RELAYRL_CONTAINERS) and must have run first: these helpers point podman at the same directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIR = Path(os.environ.get("RELAYRL_CONTAINERS", "/var/tmp/relayrl-containers"))
IMAGE = "localhost/relayrl:0.1.0"
PROFILE = ROOT / "deploy" / "seccomp" / "relayrl-sandbox.json"
COMPOSE = Path(sys.executable).parent / "podman-compose"


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(DIR / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(DIR / "storage.conf"), "TMPDIR": str(DIR / "tmp"), **extra}


def podman(*args: str, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env(), **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}"
                             f"\n{result.stderr[-3000:]}")
    return result


def inspect(name: str) -> dict:
    return json.loads(podman("inspect", name).stdout)[0]


def crash(name: str) -> int:
    """SIGKILL the container's main process from the host, as the kernel's OOM killer or a crash
    would: the runtime then applies the restart policy (`podman kill` counts as a user's stop)."""
    state = inspect(name)["State"]
    os.kill(state["Pid"], 9)
    return state["Pid"]


def wait_for(what: str, check, timeout_s: float, every_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def python_in(container: str, code: str, timeout: float = 120, stdin: str | None = None) -> dict:
    """Run Python in a running container (its own environment and security context), `stdin` on
    its standard input; the last line it prints is JSON."""
    result = podman("exec", "-i", container, "python", "-c", code, timeout=timeout, input=stdin or "")
    return json.loads(result.stdout.strip().splitlines()[-1])
