"""The replay-queue boundary: streams of opaque payloads consumed through consumer groups.

Every hand-off between services goes through one of these streams (DESIGN.md): prompts from the
learner to the actors, scored groups from the reward service to the learner. Delivery is
at-least-once: a consumer leases entries, acknowledges them when their work is durable, and an
entry whose consumer died (idle past a timeout) is leased again to another consumer. Consumers
are idempotent (ids are unique), so a re-delivery is harmless.

Two implementations share these semantics: `RedisReplayQueue` (Redis Streams: XADD, XREADGROUP,
XACK, XAUTOCLAIM) and `MemoryReplayQueue` (in-process, for unit tests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One leased stream entry."""

    id: str
    """Stream entry id (Redis's `ms-seq`)."""
    payload: bytes
    """The bytes that were put."""
    deliveries: int = 1
    """How many times this entry has been delivered (1 on first lease)."""


@dataclass(frozen=True)
class AckRef:
    """An entry of another stream to acknowledge atomically with a `put`."""

    stream: str
    group: str
    entry_id: str


@dataclass(frozen=True)
class GroupInfo:
    """A consumer group of a stream, as an operator reads it."""

    name: str
    consumers: int
    """Consumers the group has seen (each actor, worker or learner that leased)."""
    pending: int
    """Entries delivered and not acknowledged (leased)."""
    waiting: int
    """Entries not yet delivered to the group."""


@dataclass(frozen=True)
class ConsumerInfo:
    """One consumer of a group: what it holds and how long since it was last heard of."""

    name: str
    pending: int
    idle_s: float


class ReplayQueue(ABC):
    """Streams with consumer groups; all methods are thread-safe."""

    @abstractmethod
    def ensure_group(self, stream: str, group: str) -> None:
        """Create the stream and its consumer group if missing (reading from the start)."""

    @abstractmethod
    def put(self, stream: str, payload: bytes, ack: AckRef | None = None) -> str:
        """Append a payload; return its entry id. With `ack`, that entry is acknowledged in the
        same transaction, so the hand-off is never half done."""

    @abstractmethod
    def put_once(self, stream: str, payload: bytes, seq: int) -> bool:
        """Append the `seq`-th entry (0-based, entry id `0-{seq+1}`) of a stream whose entries are
        numbered by their producer; False when it is already there. Retrying a put whose reply was
        lost (Redis restarting) therefore never adds a second copy."""

    @abstractmethod
    def lease(self, stream: str, group: str, consumer: str, count: int, block_s: float = 0.0,
              reclaim_idle_s: float | None = None) -> list[Entry]:
        """Lease up to `count` entries for `consumer`. With `reclaim_idle_s`, entries leased by
        any consumer and idle at least that long are taken over first (a dead consumer's work);
        then new entries are read, waiting up to `block_s` seconds when there are none."""

    @abstractmethod
    def pending_for(self, stream: str, group: str, consumer: str, count: int = 1000) -> list[Entry]:
        """Entries leased by `consumer` and not yet acknowledged (what a restarted consumer owns)."""

    @abstractmethod
    def renew(self, stream: str, group: str, consumer: str, ids: list[str]) -> None:
        """Reset the idle time of leased entries, so a long job keeps its lease."""

    @abstractmethod
    def ack(self, stream: str, group: str, ids: list[str]) -> int:
        """Acknowledge entries; return how many were pending."""

    @abstractmethod
    def lag(self, stream: str, group: str) -> int:
        """Entries not yet delivered to the group."""

    @abstractmethod
    def pending(self, stream: str, group: str) -> int:
        """Entries delivered to the group and not acknowledged."""

    @abstractmethod
    def length(self, stream: str) -> int:
        """Entries in the stream."""

    @abstractmethod
    def added(self, stream: str) -> int:
        """Entries ever added to the stream, trimmed ones included (0 for a missing stream)."""

    @abstractmethod
    def trim(self, stream: str) -> int:
        """Delete the entries every consumer group is done with; return how many went.

        An entry stays while any group has it pending (leased, unacknowledged) or has not yet
        been delivered it, so trimming never loses work; a stream without groups is kept whole.
        Groups must exist before trimming starts (a group created later, from id 0, would not
        see what was trimmed)."""

    # -- read-only views (the gateway, the ledger, progress displays) -------------------------
    @abstractmethod
    def group_info(self, stream: str, group: str) -> GroupInfo | None:
        """The group's counts; None when the stream or the group does not exist (yet)."""

    @abstractmethod
    def consumers(self, stream: str, group: str) -> list[ConsumerInfo]:
        """The group's consumers sorted by name; empty when the stream or group does not exist."""

    @abstractmethod
    def recent(self, stream: str, count: int) -> list[bytes]:
        """Payloads of the newest `count` entries still in the stream, newest first."""

    @abstractmethod
    def unfinished(self, stream: str, group: str) -> list[bytes]:
        """Payloads `group` has not acknowledged: leased (pending) or not yet delivered, in stream
        order. LookupError when the stream or group does not exist."""

    # -- shared values ------------------------------------------------------------------------
    @abstractmethod
    def set_value(self, key: str, value: str) -> None:
        """Set a shared value (the announced policy version)."""

    @abstractmethod
    def get_value(self, key: str) -> str | None:
        """Read a shared value; None when unset."""

    @abstractmethod
    def set_values(self, values: dict[str, str]) -> None:
        """Set several shared values at once: a reader never sees some set and others not (the
        version and its epoch)."""

    @abstractmethod
    def get_values(self, keys: list[str]) -> list[str | None]:
        """Read several shared values at one instant (None for an unset one)."""

    @abstractmethod
    def delete_value(self, key: str) -> None:
        """Unset a shared value (no error when unset)."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the queue answers; raises the backend's connection error when it cannot."""

    def close(self) -> None:
        """Release connections."""
