"""A private redis-server on loopback: what the single-machine launcher, the chaos benchmark and
the tests start, one way.

The launcher's Redis is durable: the append-only file is fsynced on every write, so a Redis
killed at any moment comes back with every write it acknowledged (a prompt admitted, a group
scored, a lease acknowledged), and a full Redis refuses writes (backpressure) instead of evicting
a stream (lost work). Tests use the same command without the append-only file, which they do not
need. `free_port` and `wait_port` are the loopback helpers the launcher also uses for its gRPC and
metrics ports.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on loopback `port`; with `proc`, fail at once
    when that process exits instead (its own error is in its output)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process meant to listen on 127.0.0.1:{port} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def redis_command(port: int, data_dir: Path, durable: bool = True) -> list[str]:
    """argv of a redis-server on loopback `port` keeping its files in `data_dir`: durable (AOF
    fsynced on every write, 2 GB, no eviction) unless `durable` is False (tests)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run scripts/setup.sh (apt-get install redis-server)")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", ""]
    if durable:
        return [*argv, "--appendonly", "yes", "--appendfsync", "always", "--maxmemory", "2gb",
                "--maxmemory-policy", "noeviction"]
    return [*argv, "--appendonly", "no"]


def start_private_redis(data_dir: Path, durable: bool = False, port: int | None = None,
                        **popen) -> tuple[subprocess.Popen, str]:
    """Start a redis-server and wait until it accepts connections; (process, redis:// URL)."""
    port = port or free_port()
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.STDOUT)
    proc = subprocess.Popen(redis_command(port, data_dir, durable), **popen)
    try:
        wait_port(port, timeout_s=10, proc=proc)
    except RuntimeError:
        proc.kill()
        proc.wait()
        raise
    return proc, f"redis://127.0.0.1:{port}/0"
