"""Shared fixtures: a real redis-server on a free loopback port, started per test session, and a
polling helper."""

from __future__ import annotations

import os
import time

import pytest

from relayrl.replay.private_redis import start_private_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    try:
        proc, url = start_private_redis(tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:
        pytest.fail(f"redis-server did not start: {exc}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server):
    """A clean database on the session's redis-server."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny Qwen2 and tokenizer that `relayrl model init-tiny` builds (built once)."""
    from relayrl.config import TinyModelConfig
    from relayrl.model.tiny import init_tiny

    return init_tiny(tmp_path_factory.mktemp("tiny") / "model", TinyModelConfig(max_position_embeddings=64))


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def wait_for():
    """`wait_for(predicate, timeout_s, what)`: poll `predicate` until it returns something truthy
    and return that; fail naming `what` after `timeout_s` seconds."""
    return _wait_for
