"""The reward service's core: score submitted groups and hand each complete group to the learner.

`submit` validates a group, drops duplicates (group ids are unique; a resubmission from an actor
that retried is answered `False`), and schedules one scoring task per sample on a thread pool;
the verifiers do their heavy work in their own worker processes. A sample whose verifier hits an
infrastructure error is retried up to `max_attempts`. When the last sample of a group is scored,
the group (with `scores` filled) is appended to the scored-groups stream in the same transaction
that acknowledges the prompt the actor leased: kill the service at any moment and either both
happened or neither did, in which case the prompt's lease expires and an actor regenerates it.

Bounded: more than `max_in_flight` unfinished groups and `submit` raises `Saturated`, so an
actor backs off instead of the service growing without limit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from relayrl.config import RewardConfig, StreamKeys, keys
from relayrl.replay.base import AckRef, ReplayQueue
from relayrl.reward.client import Closed, Saturated
from relayrl.reward.verifiers import Score, Verifier, create, registered_kinds
from relayrl.wire import common_pb2, reward_pb2

__all__ = ["Closed", "RewardService", "Saturated"]

log = logging.getLogger(__name__)

# Module-level: prometheus_client's registry rejects a second registration of the same name.
REQUESTS = Counter("relayrl_reward_requests_total", "Samples scored, by task kind and outcome "
                   "(each attempt counts, so retried infrastructure errors show).", ["kind", "outcome"])
DURATION = Histogram("relayrl_reward_duration_seconds", "Time to score one sample (one attempt).",
                     ["kind"], buckets=(.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900))
VALUE = Histogram("relayrl_reward_value", "Final rewards of scored samples (infrastructure errors "
                  "excluded).", ["kind"], buckets=(-1, -.5, 0, .1, .25, .5, .75, 1, 1.25, 1.5, 2, 5))
IN_FLIGHT = Gauge("relayrl_reward_groups_in_flight", "Groups accepted and not yet written to the "
                  "scored-groups stream.")

_ENTRY_ID = re.compile(r"^\d+(-\d+)?$")
_PUT_ATTEMPTS = 6


@dataclass
class _Pending:
    group: common_pb2.Group
    scores: list[Score | None]
    remaining: int


class RewardService:
    """Scores groups of run `run` with the verifiers registered by kind; thread-safe."""

    def __init__(self, cfg: RewardConfig, queue: ReplayQueue, run: str, max_in_flight: int = 1024,
                 recent_size: int = 100_000) -> None:
        if max_in_flight < 1 or recent_size < 1:
            raise ValueError("max_in_flight and recent_size must be positive")
        self.cfg, self.queue, self.keys = cfg, queue, keys(run)
        self.max_in_flight, self.recent_size = max_in_flight, recent_size
        self.verifiers: dict[str, Verifier] = {kind: create(kind, cfg) for kind in registered_kinds()}
        # More threads than verifier processes: fast-path samples need no process slot.
        self._threads = ThreadPoolExecutor(cfg.workers + 4, thread_name_prefix="reward")
        self._lock = threading.Lock()
        self._in_flight: dict[str, _Pending] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()  # bounded: ids written lately
        self._groups_scored = self._samples_scored = 0
        self._closed = self._abort = False

    # -- the API ------------------------------------------------------------------------------
    def submit(self, group: common_pb2.Group) -> bool:
        """Accept `group` for scoring; False when its id is in flight or was scored lately.
        Raises ValueError for a malformed group, Saturated when too many are in flight."""
        self._validate(group)
        pending = _Pending(common_pb2.Group(), [None] * len(group.samples), len(group.samples))
        pending.group.CopyFrom(group)
        del pending.group.scores[:]
        with self._lock:
            if self._closed:
                raise Closed("the reward service is shutting down")
            if group.group_id in self._in_flight or group.group_id in self._recent:
                return False
            if len(self._in_flight) >= self.max_in_flight:
                raise Saturated(f"{len(self._in_flight)} groups in flight (max_in_flight={self.max_in_flight})")
            self._in_flight[group.group_id] = pending
            IN_FLIGHT.inc()
        for index in range(len(group.samples)):
            self._threads.submit(self._score_sample, pending, index)
        return True

    def score(self, kind: str, response: str, reference: str) -> Score:
        """Score one response now (debugging, evaluation), retrying infrastructure errors."""
        if kind not in self.verifiers:
            raise ValueError(self._unknown_kind(kind))
        return self._score_with_retries(kind, response, reference)

    def status(self) -> reward_pb2.RewardStatus:
        with self._lock:
            return reward_pb2.RewardStatus(
                groups_in_flight=len(self._in_flight), groups_scored=self._groups_scored,
                samples_scored=self._samples_scored, kinds=sorted(self.verifiers))

    def close(self, drain: bool = True) -> None:
        """Stop accepting groups. With `drain`, finish and write every group in flight first;
        without, abandon them (their prompts stay leased, so actors regenerate them)."""
        with self._lock:
            self._closed = True
            self._abort = not drain
        self._threads.shutdown(wait=drain, cancel_futures=not drain)
        for verifier in self.verifiers.values():
            verifier.close()

    # -- internals ----------------------------------------------------------------------------
    def _unknown_kind(self, kind: str) -> str:
        return f"unknown task kind {kind!r} (this service scores: {', '.join(sorted(self.verifiers))})"

    def _validate(self, group: common_pb2.Group) -> None:
        if not group.group_id:
            raise ValueError("group.group_id is empty")
        if not group.samples:
            raise ValueError(f"group {group.group_id!r} has no samples")
        if not group.HasField("prompt"):
            raise ValueError(f"group {group.group_id!r} has no prompt")
        if group.prompt.kind not in self.verifiers:
            raise ValueError(f"group {group.group_id!r}: " + self._unknown_kind(group.prompt.kind))
        if group.prompt_entry_id and not _ENTRY_ID.match(group.prompt_entry_id):
            raise ValueError(f"group {group.group_id!r}: prompt_entry_id {group.prompt_entry_id!r} "
                             "is not a stream entry id")

    def _score_once(self, kind: str, response: str, reference: str) -> Score:
        started = time.monotonic()
        try:
            score = self.verifiers[kind].score(response, reference)
        except Exception as exc:  # fault boundary: a verifier bug is an infra error, not a crash or a zero
            log.exception("verifier %s raised", kind)
            score = Score.infra_error(f"verifier raised {exc!r}")
        score.duration_s = time.monotonic() - started
        REQUESTS.labels(kind, score.outcome).inc()
        DURATION.labels(kind).observe(score.duration_s)
        return score

    def _score_with_retries(self, kind: str, response: str, reference: str) -> Score:
        for attempt in range(1, self.cfg.max_attempts + 1):
            score = self._score_once(kind, response, reference)
            score.details["attempts"] = attempt
            if score.outcome != "infra_error":
                VALUE.labels(kind).observe(score.reward)
                return score
            if self._abort:
                break
        return score

    def _score_sample(self, pending: _Pending, index: int) -> None:
        try:
            group = pending.group
            score = self._score_with_retries(group.prompt.kind, group.samples[index].text, group.prompt.reference)
            with self._lock:
                pending.scores[index] = score
                pending.remaining -= 1
                self._samples_scored += 1
                done = pending.remaining == 0
            if done:
                self._finish(pending)
        except Exception:  # fault boundary: a thread-pool task's exception would vanish silently
            log.exception("scoring group %s sample %d failed", pending.group.group_id, index)
            self._forget(pending.group.group_id, written=False)

    def _finish(self, pending: _Pending) -> None:
        group = pending.group
        group.scores.extend(score.to_proto() for score in pending.scores)
        ack = (AckRef(self.keys.prompts, StreamKeys.ACTORS, group.prompt_entry_id)
               if group.prompt_entry_id else None)
        payload = group.SerializeToString()
        for attempt in range(_PUT_ATTEMPTS):
            if self._abort:
                self._forget(group.group_id, written=False)
                return
            try:
                self.queue.put(self.keys.groups, payload, ack=ack)
                break
            except Exception:  # fault boundary: the queue may be briefly unreachable
                log.warning("writing scored group %s failed (attempt %d)", group.group_id, attempt + 1,
                            exc_info=True)
                time.sleep(0.2 * 2 ** attempt)
        else:
            # Nothing is lost: the prompt was not acknowledged, so its lease expires and an actor
            # regenerates it; forgetting the id lets that new group in.
            log.error("giving up on scored group %s; its prompt will be re-leased", group.group_id)
            self._forget(group.group_id, written=False)
            return
        self._forget(group.group_id, written=True)

    def _forget(self, group_id: str, written: bool) -> None:
        with self._lock:
            if self._in_flight.pop(group_id, None) is None:
                return
            IN_FLIGHT.dec()
            if written:
                self._groups_scored += 1
                self._recent[group_id] = None
                while len(self._recent) > self.recent_size:
                    self._recent.popitem(last=False)
