"""The replay queue: streams with consumer groups, leased and acknowledged (at-least-once).

`make_queue` builds the backend a run's config names: `RedisReplayQueue` for `type: redis`,
`MemoryReplayQueue` for `type: memory`. Both implement `ReplayQueue` (see `base`).
"""

from __future__ import annotations

from relayrl.config import MemoryQueue, RedisQueue
from relayrl.replay.base import AckRef, ConsumerInfo, Entry, GroupInfo, ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.replay.memory_queue import MemoryReplayQueue
from relayrl.replay.redis_queue import RedisReplayQueue

__all__ = ["AckRef", "ConsumerInfo", "Entry", "GroupInfo", "MemoryReplayQueue", "RedisReplayQueue", "ReplayQueue",
           "StreamKeys", "make_queue"]


def make_queue(cfg: RedisQueue | MemoryQueue, url: str | None = None) -> ReplayQueue:
    """The queue `cfg` describes. For Redis the address is `url` when given (the address the
    single-machine launcher assigned, or a command-line override), else `cfg.url`; having
    neither is an error. A memory queue is private to this process: each call makes a new one."""
    if isinstance(cfg, MemoryQueue):
        return MemoryReplayQueue()
    if isinstance(cfg, RedisQueue):
        address = url or cfg.url
        if address is None:
            raise ValueError("queue.type is redis but no URL was given: set queue.url or pass url")
        return RedisReplayQueue(address)
    raise TypeError(f"unknown queue config {type(cfg).__name__}")
