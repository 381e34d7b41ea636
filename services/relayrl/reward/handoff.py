"""The reward service's side of the prompts it holds: their leases, and where each one ends.

A prompt leased by an actor stays leased until the reward service writes its scored group (the
write acknowledges it, in one transaction). Between the actor's submission and that write the
group waits for its rewards, which on the slow lane take minutes: far longer than the prompts'
lease (`queue.lease_idle_s`). So the service, which holds the group and knows its
`prompt_entry_id` and `actor_id`, keeps that lease alive (`relayrl.replay.leases.LeaseKeeper`,
every `lease_idle_s / 3`, on behalf of the actor, which may be gone: the group is safe here).
Renewal lives and dies with this process: if the reward service dies, its groups are lost and
their prompts' leases expire, so actors generate them again, as before.

Every held prompt ends in one of three ways:

- `write`: the scored group goes to the learner's stream, acknowledging the prompt;
- `release` without a write (a group whose samples ended in infrastructure errors, or one the
  service gave up writing): renewal stops, the lease expires and an actor generates it again;
- `dead_letter`: the service refuses the prompt (an unknown or disabled kind, a task that does not
  load, infrastructure errors in every one of `reward.max_group_attempts` generations). It goes to
  `relayrl:{run}:dead` with its reason, then a marker group (`Group.dead_letter` = the reason, no
  samples) goes to the learner's stream, acknowledging the prompt. The learner counts the marker as
  a consumed prompt dropped for `dead_letter`, recorded in its checkpoint: without it, AReaL's
  admission bound would wait for that prompt's group forever. A crash between the two writes
  leaves the prompt leased: it is generated again, refused again, and dead-lettered a second time
  (the learner drops the second marker as a duplicate).

Writes retry Redis being away for about 6 s (`relayrl.retry`); after that a write gives up and the
prompt is released, so nothing is lost: its lease expires and it is generated again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter

from relayrl.replay.base import AckRef, ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.replay.leases import LeaseKeeper
from relayrl.retry import Backoff, is_transient
from relayrl.wire import common_pb2

log = logging.getLogger(__name__)

DEAD_PROMPTS = Counter("relayrl_reward_dead_letters_total", "Prompts the reward service refused and moved to the "
                       "dead-letter stream (unknown or disabled kind, a task that does not load, infrastructure "
                       "errors in every generation), by kind.", ["kind"])
RETRIED = Counter("relayrl_reward_groups_retried_total", "Groups not written because fewer than two of their samples "
                  "were scored (infrastructure errors): their prompts are released to be generated again.", ["kind"])

_PUT_ATTEMPTS = 6  # one write: 6 tries over about 6 s (0.2 s, doubling, up to 3.2 s)
_PUT_FIRST_WAIT_S, _PUT_MAX_WAIT_S = 0.2, 3.2


class PromptHandoff:
    """Leases, writes and dead letters of the prompts behind the groups a reward service holds."""

    def __init__(self, queue: ReplayQueue, run: str, lease_s: float) -> None:
        """`lease_s`: the prompts' lease (`queue.lease_idle_s`); renewed every third of it."""
        self.queue, self.keys = queue, StreamKeys(run)
        self.leases = LeaseKeeper(queue, self.keys.prompts, StreamKeys.ACTORS, lease_s / 3, "reward-service").start()

    def hold(self, group: common_pb2.Group) -> None:
        """Keep `group`'s prompt leased for its actor until `release` (a resubmission from another
        actor, which took the prompt over, moves the renewals to the new owner)."""
        if group.prompt_entry_id:
            self.leases.hold(group.prompt_entry_id, group.actor_id)

    def release(self, group: common_pb2.Group) -> None:
        """Stop renewing `group`'s prompt: acknowledged by a write, or left to expire."""
        if group.prompt_entry_id:
            self.leases.release(group.prompt_entry_id)

    def write(self, group: common_pb2.Group, abandoned: Callable[[], bool]) -> bool:
        """Append the scored `group` to the learner's stream, acknowledging its prompt in the same
        transaction; False when Redis stayed away or `abandoned()` turned true."""
        return self._put(self.keys.groups, group.SerializeToString(), self._ack(group), abandoned, group.group_id)

    def dead_letter(self, group: common_pb2.Group, reason: str, abandoned: Callable[[], bool]) -> bool:
        """Move `group`'s prompt to the dead letters with `reason`, then hand the learner a marker
        that acknowledges the prompt; False when either write gave up (the prompt is re-leased)."""
        prompt = group.prompt
        letter = {"prompt": {"prompt_id": prompt.prompt_id, "kind": prompt.kind, "reference": prompt.reference[:2000],
                             "admitted_version": prompt.admitted_version},
                  "group_id": group.group_id, "entry_id": group.prompt_entry_id, "actor_id": group.actor_id,
                  "deliveries": group.prompt_deliveries, "reason": reason, "at": time.time()}
        if not self._put(self.keys.dead, json.dumps(letter).encode(), None, abandoned, group.group_id):
            return False
        marker = common_pb2.Group(group_id=group.group_id, prompt=prompt, actor_id=group.actor_id,
                                  prompt_entry_id=group.prompt_entry_id, prompt_deliveries=group.prompt_deliveries,
                                  dead_letter=reason)
        if not self._put(self.keys.groups, marker.SerializeToString(), self._ack(group), abandoned, group.group_id):
            return False
        DEAD_PROMPTS.labels(prompt.kind or "none").inc()
        log.error("prompt %s (kind %r) dead-lettered: %s", prompt.prompt_id, prompt.kind, reason)
        return True

    def failure(self) -> BaseException | None:
        """The error that stopped the lease renewals, if any."""
        return self.leases.failure()

    def close(self) -> None:
        """Stop renewing: the leases of groups still held expire and their prompts are re-leased."""
        self.leases.stop()

    def _ack(self, group: common_pb2.Group) -> AckRef | None:
        return AckRef(self.keys.prompts, StreamKeys.ACTORS, group.prompt_entry_id) if group.prompt_entry_id else None

    def _put(self, stream: str, payload: bytes, ack: AckRef | None, abandoned: Callable[[], bool], what: str) -> bool:
        backoff = Backoff(_PUT_FIRST_WAIT_S, _PUT_MAX_WAIT_S)
        for attempt in range(1, _PUT_ATTEMPTS + 1):
            if abandoned():
                return False
            try:
                self.queue.put(stream, payload, ack=ack)
                return True
            except Exception as exc:  # retry boundary: the queue may be briefly unreachable
                if not is_transient(exc):
                    raise  # a bug: the caller's fault boundary logs it and forgets the group
                log.warning("writing %s to %s failed (attempt %d of %d): %s", what, stream, attempt, _PUT_ATTEMPTS, exc)
                if attempt < _PUT_ATTEMPTS:
                    backoff.wait()
        log.error("giving up writing %s to %s; its prompt will be re-leased", what, stream)
        return False
