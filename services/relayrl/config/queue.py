"""`queue:` — the replay queue backend: Redis streams (every networked run) or in-process memory
(unit tests and single-process tools), a discriminated union on `type`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from relayrl.config.base import Section


class RedisQueue(Section):
    """Redis streams with consumer groups: the networked replay queue."""

    type: Literal["redis"] = "redis"
    """Selects this backend."""
    url: str | None = None
    """redis:// URL. Null: the single-machine launcher starts a private redis-server."""
    lease_idle_s: float = Field(30.0, gt=0)
    """A leased entry idle this long is re-leased to another consumer (XAUTOCLAIM)."""


class MemoryQueue(Section):
    """In-process queue with the same semantics: unit tests and single-process runs."""

    type: Literal["memory"] = "memory"
    """Selects this backend."""
    lease_idle_s: float = Field(30.0, gt=0)
    """A leased entry idle this long is re-leased to another consumer."""


QueueConfig = Annotated[RedisQueue | MemoryQueue, Field(discriminator="type")]
