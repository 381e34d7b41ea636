"""Checks made before a service or a run starts anything: the mistakes of a first hour, as one line.

A service that dies at start-up inside a launcher leaves a person a timeout that names a port;
the cause is a log file away. What can be checked before any process, model or port is taken is
checked here, and a failure is a `StartupError` whose message is one line naming the thing (the
path, the URL, the port) and the flag or key that sets it. `relayrl.cli.main` prints it without a
traceback (exit code 2), for `relayrl train` and every `relayrl serve *` alike.

Torch-free and gRPC-free: the CLI runs these before importing the heavy parts.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path


class StartupError(Exception):
    """A service or run cannot start for a reason a person fixes; `str()` is ready to print."""


def writable_dir(path: Path, flag: str = "--out") -> Path:
    """Create `path` (and its parents) and check a file can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".relayrl-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"cannot write to {flag} {path}: {exc.strerror or exc} (pass another {flag})") from None
    return path


def free_port(port: int | None, host: str = "127.0.0.1", flag: str = "--port") -> None:
    """Refuse a port that another process already listens on (None or 0: nothing to check)."""
    if not port:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror or exc})"
            raise StartupError(f"port {port} on {host} {why}: pass another with {flag}") from None


def redis_answers(url: str | None, flag: str = "--redis / queue.url", timeout_s: float = 3.0) -> None:
    """Refuse a Redis URL that does not answer a PING within `timeout_s` (None: nothing to check)."""
    if url is None:
        return
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    except ValueError as exc:  # not a redis:// URL
        raise StartupError(f"{flag}: {url!r} is not a Redis URL: {exc}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StartupError(f"Redis at {_hide_password(url)} does not answer ({flag}): {exc}") from None
    finally:
        client.close()


def model_dir(path: str | Path | None, key: str = "--model") -> None:
    """Refuse a model directory that does not exist or holds no Hugging Face config.json."""
    if path is None:
        return
    path = Path(path)
    if not path.is_dir():
        hint = f" (make it with `relayrl model import-gguf {path}`?)" if "smollm" in path.name.lower() else ""
        raise StartupError(f"{key}: model directory {path} does not exist{hint}")
    if not (path / "config.json").exists():
        raise StartupError(f"{key}: {path} is not a Hugging Face model directory (no config.json)")


def task_source(task, key: str = "task") -> None:
    """Refuse a task the prompt stream cannot make (an unknown reasoning-gym dataset, a bad option):
    the same call the learner makes first, so a mistake shows here and not in its log."""
    from relayrl.tasks import stream

    try:
        next(stream(task))
    except ValueError as exc:
        message = str(exc)
        raise StartupError(message if message.startswith(f"{key}:") else f"{key}: {message}") from None


def _hide_password(url: str) -> str:
    """`url` with any password replaced, fit for a message."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
