"""The reward service's core: score submitted groups and hand each complete group to the learner.

`submit` validates a group, drops duplicates (group ids are unique; a resubmission from an actor
that retried is answered `False`), and schedules one scoring task per sample on a thread pool;
the verifiers do their heavy work in their own worker processes. A sample whose verifier hits an
infrastructure error is retried up to `max_attempts`. When the last sample of a group is scored,
the group (with `scores` filled) is appended to the scored-groups stream in the same transaction
that acknowledges the prompt the actor leased: kill the service at any moment and either both
happened or neither did, in which case the prompt's lease expires and an actor regenerates it.

While a group waits for its rewards the service keeps its prompt leased (`handoff`), so a slow
reward is never generated twice. A group left with fewer than two scored samples (infrastructure
errors: the learner could not train it) is not written: its prompt is released and generated
again, up to `max_group_attempts` leases. A prompt the service refuses (an unknown or disabled
kind, a task that does not load, infrastructure errors every time) is dead-lettered and `submit`
raises `Refused`; the learner is told, so its admission counts the prompt as consumed.

Bounded, per kind: each task kind has its own lane (a thread pool and a cap on samples accepted
and not yet scored, `reward.lanes.<kind>`), so slow code jobs never hold up math samples. A
submission that would overfill its lane, or more than `max_in_flight` unfinished groups, raises
`Saturated` (gRPC RESOURCE_EXHAUSTED): an actor backs off instead of the service growing without
limit or running out of memory. R1's language-consistency reward (`weights.language`) is added
to every scored sample of a group, judged against the group's prompt.
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

from relayrl.config import LaneConfig, RedisQueue, RewardConfig
from relayrl.replay.base import ReplayQueue
from relayrl.reward.errors import Closed, Refused, Saturated
from relayrl.reward.handoff import RETRIED, PromptHandoff
from relayrl.reward.language import language_consistency
from relayrl.reward.verifiers.base import Score, Verifier
from relayrl.reward.verifiers.registry import create, kinds
from relayrl.wire import common_pb2, reward_pb2

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
LANE_PENDING = Gauge("relayrl_reward_lane_pending", "Samples accepted and not yet scored, by kind.", ["kind"])
REJECTED = Counter("relayrl_reward_rejected_total", "Requests refused with RESOURCE_EXHAUSTED, by kind.", ["kind"])

_ENTRY_ID = re.compile(r"^\d+(-\d+)?$")
_MIN_SCORED = 2  # the learner trains a group only with two scored samples (learner.spec.valid_indices)
DEFAULT_PROMPT_LEASE_S = RedisQueue().lease_idle_s
"""`queue.lease_idle_s`'s default: the prompts' lease a service renews when it is not told the run's."""


class _Lane:
    """One kind's worker threads and admission count."""

    def __init__(self, kind: str, cfg: LaneConfig, verifier: Verifier) -> None:
        self.kind, self.max_pending = kind, cfg.max_pending
        self.threads = ThreadPoolExecutor(cfg.workers or verifier.lane_workers(), thread_name_prefix=f"reward-{kind}")
        self.pending = 0


@dataclass
class _Pending:
    group: common_pb2.Group
    scores: list[Score | None]
    remaining: int


class RewardService:
    """Scores groups of run `run` with a verifier per kind (`verifiers.registry`); thread-safe."""

    def __init__(self, cfg: RewardConfig, queue: ReplayQueue, run: str, max_in_flight: int = 1024,
                 recent_size: int = 100_000, prompt_lease_s: float = DEFAULT_PROMPT_LEASE_S) -> None:
        """`prompt_lease_s`: the prompts' lease (`queue.lease_idle_s`), renewed for groups in flight."""
        if max_in_flight < 1 or recent_size < 1:
            raise ValueError("max_in_flight and recent_size must be positive")
        self.cfg, self.queue = cfg, queue
        self.max_in_flight, self.recent_size = max_in_flight, recent_size
        self.verifiers: dict[str, Verifier] = {kind: create(kind, cfg) for kind in kinds()}
        for kind, verifier in self.verifiers.items():
            log.info("verifier %s: %s", kind, verifier.unavailable() or verifier.health() or "ready")
        self._lanes = {kind: _Lane(kind, getattr(cfg.lanes, kind, LaneConfig()), verifier)
                       for kind, verifier in self.verifiers.items()}
        self._lock = threading.Lock()
        self._in_flight: dict[str, _Pending] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()  # bounded: ids written lately
        self._groups_scored = self._samples_scored = 0
        self._closed = self._abort = False
        self._handoff = PromptHandoff(queue, run, prompt_lease_s)
        # Kinds in reward.slow_lane.kinds (SWE) are scored by reward workers off a Redis stream
        # (slow_lane.py); the service only enqueues their samples and collects the results.
        self._slow = None
        if any(kind in self.verifiers for kind in cfg.slow_lane.kinds):
            from relayrl.reward.slow_lane import SlowLane

            self._slow = SlowLane(cfg, queue, run, self._slow_result, verifiers=self.verifiers)

    # -- the API ------------------------------------------------------------------------------
    def submit(self, group: common_pb2.Group) -> bool:
        """Accept `group` for scoring; False when its id is in flight or was scored lately.
        Raises ValueError for a malformed group (`Refused` once its prompt is dead-lettered),
        Saturated when too many are in flight."""
        if (reason := self._refusal(group)) is not None:
            return self._refuse(group, reason)
        pending = _Pending(common_pb2.Group(), [None] * len(group.samples), len(group.samples))
        pending.group.CopyFrom(group)
        del pending.group.scores[:]
        with self._lock:
            if self._closed:
                raise Closed("the reward service is shutting down")
            held = self._in_flight.get(group.group_id)
            if held is not None and held.group.prompt_entry_id == group.prompt_entry_id:
                self._handoff.hold(group)  # the prompt was taken over by this actor: renew it for it now
            if held is not None or group.group_id in self._recent:
                return False
            if len(self._in_flight) >= self.max_in_flight:
                REJECTED.labels(group.prompt.kind).inc()
                raise Saturated(f"{len(self._in_flight)} groups in flight (max_in_flight={self.max_in_flight})")
            lane = self._admit(group.prompt.kind, len(group.samples))
            self._in_flight[group.group_id] = pending
            self._handoff.hold(group)  # before any score can finish the group (and release it)
            IN_FLIGHT.inc()
        if self._slow is not None and group.prompt.kind in self._slow.kinds:
            # long kinds (SWE): one job per sample on the slow lane's stream; `_slow_result` records
            # the scores. If the queue fails, the group is refused as a whole (its prompt is re-leased).
            try:
                for index, sample in enumerate(group.samples):
                    if not sample.infra_error:
                        self._slow.enqueue(group.group_id, index, group.prompt.kind, sample.text, group.prompt.reference)
            except BaseException:
                self._release(lane, len(group.samples))
                self._forget(group.group_id, written=False)
                raise
            for index, sample in enumerate(group.samples):
                if sample.infra_error:  # an agent episode that never ran to its end: not judged (_score_sample)
                    lane.threads.submit(self._score_sample, pending, index)
            return True
        for index in range(len(group.samples)):
            lane.threads.submit(self._score_sample, pending, index)
        return True

    def score(self, kind: str, response: str, reference: str) -> Score:
        """Score one response now (debugging, evaluation), retrying infrastructure errors."""
        if kind not in self.verifiers:
            raise ValueError(self._unknown_kind(kind))
        if reason := self.verifiers[kind].unavailable():
            raise ValueError(f"task kind {kind!r} is disabled: {reason}")
        if reason := self.verifiers[kind].refusal(reference):
            raise ValueError(f"the request: {reason}")
        with self._lock:
            lane = self._admit(kind, 1)
        try:
            return self._score_with_retries(kind, response, reference)
        finally:
            self._release(lane)

    def health(self) -> dict[str, dict]:
        """Per kind: what its verifier runs on, or why it refuses work."""
        return {kind: {"available": v.unavailable() is None, "reason": v.unavailable(), **v.health()}
                for kind, v in self.verifiers.items()}

    def status(self) -> reward_pb2.RewardStatus:
        with self._lock:
            return reward_pb2.RewardStatus(
                groups_in_flight=len(self._in_flight), groups_scored=self._groups_scored,
                samples_scored=self._samples_scored,
                kinds=sorted(k for k, v in self.verifiers.items() if v.unavailable() is None))

    def failure(self) -> BaseException | None:
        """The error that stopped a background loop of this service (the prompt lease renewals,
        the slow lane's result listener or workers), or None; the server's process exits then."""
        return self._handoff.failure() or (self._slow.failure() if self._slow is not None else None)

    def close(self, drain: bool = True) -> None:
        """Stop accepting groups. With `drain`, finish and write every group in flight first;
        without, abandon them (their prompts' leases, no longer renewed, expire and actors
        regenerate them)."""
        with self._lock:
            self._closed = True
            self._abort = not drain
        for lane in self._lanes.values():
            lane.threads.shutdown(wait=drain, cancel_futures=not drain)
        if self._slow is not None:  # slow-lane groups are not drained (minutes): their prompts are re-leased
            self._slow.close()
        self._handoff.close()
        for verifier in self.verifiers.values():
            verifier.close()

    # -- internals ----------------------------------------------------------------------------
    def _admit(self, kind: str, samples: int) -> _Lane:
        """Reserve room for `samples` in `kind`'s lane (call under the lock) or raise Saturated."""
        lane = self._lanes[kind]
        if lane.pending + samples > lane.max_pending:
            REJECTED.labels(kind).inc()
            raise Saturated(f"the {kind} lane has {lane.pending} samples pending; {samples} more would exceed "
                            f"reward.lanes.{kind}.max_pending={lane.max_pending}")
        lane.pending += samples
        LANE_PENDING.labels(kind).set(lane.pending)
        return lane

    def _release(self, lane: _Lane, samples: int = 1) -> None:
        with self._lock:
            lane.pending -= samples
            LANE_PENDING.labels(lane.kind).set(lane.pending)

    def _unknown_kind(self, kind: str) -> str:
        return f"unknown task kind {kind!r} (this service scores: {', '.join(sorted(self.verifiers))})"

    def _refusal(self, group: common_pb2.Group) -> str | None:
        """Why this service will not score `group`, or None. Raises ValueError when the group names
        no prompt entry that could be dead-lettered (no id, or an entry id that is not one)."""
        if not group.group_id:
            raise ValueError("group.group_id is empty")
        if group.prompt_entry_id and not _ENTRY_ID.match(group.prompt_entry_id):
            raise ValueError(f"group {group.group_id!r}: prompt_entry_id {group.prompt_entry_id!r} "
                             "is not a stream entry id")
        if not group.samples:
            return "the group has no samples"
        if not group.HasField("prompt"):
            return "the group has no prompt"
        kind = group.prompt.kind
        if kind not in self.verifiers:
            return self._unknown_kind(kind)
        if reason := self.verifiers[kind].unavailable():
            return f"task kind {kind!r} is disabled: {reason}"
        return self.verifiers[kind].refusal(group.prompt.reference)

    def _refuse(self, group: common_pb2.Group, reason: str) -> bool:
        """Dead-letter the prompt of a group this service will not score, then raise `Refused`
        (plain ValueError for a group that names no leased prompt). False for a group already
        refused or in flight (a resubmission)."""
        message = f"group {group.group_id!r}: {reason}"
        if not group.prompt_entry_id:
            raise ValueError(message)
        with self._lock:
            if group.group_id in self._in_flight or group.group_id in self._recent:
                return False
            self._recent[group.group_id] = None
        if not self._handoff.dead_letter(group, reason, self._abandoned):
            with self._lock:
                self._recent.pop(group.group_id, None)
            raise Refused(f"{message} (dead-lettering it failed: its prompt will be re-leased)")
        raise Refused(f"{message} (its prompt is dead-lettered)")

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
            try:
                text = group.samples[index].text
                if group.samples[index].infra_error:  # the actor's episode failed on every try: retried, never a zero
                    score = Score.infra_error(f"the episode did not run: {group.samples[index].infra_error}")
                else:
                    score = self._score_with_retries(group.prompt.kind, text, group.prompt.reference)
                if self.cfg.weights.language and score.outcome != "infra_error":
                    score.components["language"] = language_consistency(text, group.prompt.text)
                    score.reward += self.cfg.weights.language * score.components["language"]
            finally:
                self._release(self._lanes[group.prompt.kind])
            self._record(pending, index, score)
        except Exception:  # fault boundary: a thread-pool task's exception would vanish silently
            log.exception("scoring group %s sample %d failed", pending.group.group_id, index)
            self._forget(pending.group.group_id, written=False)

    def _record(self, pending: _Pending, index: int, score: Score) -> None:
        """Store a sample's score; write the group once the last one is in (ignore a second score)."""
        with self._lock:
            if pending.scores[index] is not None:
                return
            pending.scores[index] = score
            pending.remaining -= 1
            self._samples_scored += 1
            done = pending.remaining == 0
        if done:
            self._finish(pending)

    def _slow_result(self, group_id: str, index: int, kind: str, score: Score) -> None:
        """A slow-lane job's score (from SlowLane's listener). Idempotent: a result for a group no
        longer in flight, or for a sample already scored, changes nothing."""
        with self._lock:
            pending = self._in_flight.get(group_id)
            fresh = pending is not None and 0 <= index < len(pending.scores) and pending.scores[index] is None
        if not fresh:
            return
        REQUESTS.labels(kind, score.outcome).inc()
        DURATION.labels(kind).observe(score.duration_s)
        if score.outcome != "infra_error":
            VALUE.labels(kind).observe(score.reward)
            if self.cfg.weights.language:
                text = pending.group.samples[index].text
                score.components["language"] = language_consistency(text, pending.group.prompt.text)
                score.reward += self.cfg.weights.language * score.components["language"]
        self._release(self._lanes[kind])
        try:
            self._record(pending, index, score)
        except Exception:  # fault boundary: the listener thread must survive one bad group
            log.exception("recording group %s sample %d failed", group_id, index)
            self._forget(group_id, written=False)

    def _finish(self, pending: _Pending) -> None:
        """Write the complete group (a write that gives up leaves the prompt to be re-leased:
        nothing is lost, and forgetting the id lets the regenerated group in), or, when too few
        samples were scored, release its prompt to be generated again or dead-letter it."""
        group = pending.group
        group.scores.extend(score.to_proto() for score in pending.scores)
        scored = sum(score.outcome != "infra_error" for score in pending.scores)
        if scored >= _MIN_SCORED or not group.prompt_entry_id:
            self._forget(group.group_id, written=self._handoff.write(group, self._abandoned))
            return
        errors = sorted({str(s.details.get("error", "")) for s in pending.scores if s.outcome == "infra_error"})
        leases = max(1, group.prompt_deliveries)
        if leases < self.cfg.max_group_attempts:
            RETRIED.labels(group.prompt.kind).inc()
            log.warning("group %s: %d of %d samples scored (lease %d of %d; %s): its prompt is released to be "
                        "generated again", group.group_id, scored, len(group.samples), leases,
                        self.cfg.max_group_attempts, "; ".join(errors)[:500])
            self._forget(group.group_id, written=False)
            return
        reason = f"infrastructure errors in {leases} generations: {'; '.join(errors)[:1000]}"
        self._forget(group.group_id, written=self._handoff.dead_letter(group, reason, self._abandoned))

    def _abandoned(self) -> bool:
        return self._abort

    def _forget(self, group_id: str, written: bool) -> None:
        with self._lock:
            pending = self._in_flight.pop(group_id, None)
            if pending is None:
                return
            self._handoff.release(pending.group)
            IN_FLIGHT.dec()
            if written:
                self._groups_scored += 1
                self._recent[group_id] = None
                while len(self._recent) > self.recent_size:
                    self._recent.popitem(last=False)
