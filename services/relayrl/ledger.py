"""The accounting of a run: where every admitted prompt went, from the learner's checkpoint and Redis.

Every prompt the learner ever admitted (ids `{run}-p{k}` in admission order, k below the
prompts stream's entries-added) must end in exactly one place: trained (its group's update is in
the newest checkpoint's ledger), dropped with a reason (stale, zero variance, infrastructure
error, duplicate), or still on its way (a prompt not yet finished by the actors, or a scored group
the learner has not acknowledged). Anything else is lost; a group id in the trained list twice was
trained twice. A prompt dead-lettered by the reward service counts as dropped (`dead_letter`).
`regenerations` is the actors' count of prompts leased again after a lease expired (generated
twice). The chaos test and the resume test prove their runs with this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from relayrl.replay.keys import StreamKeys


@dataclass
class Ledger:
    admitted: int
    trained: list[str]
    dropped: dict[str, str]
    waiting_prompts: set[str] = field(default_factory=set)
    waiting_groups: set[str] = field(default_factory=set)
    regenerations: int = 0

    @property
    def duplicated(self) -> list[str]:
        """Group ids trained more than once, or both trained and dropped."""
        seen, dup = set(), []
        for gid in self.trained:
            if gid in seen or gid in self.dropped:
                dup.append(gid)
            seen.add(gid)
        return dup

    def lost(self, run: str) -> list[str]:
        """Admitted prompt ids that are nowhere: not trained, not dropped, not on their way."""
        done = set(self.trained) | set(self.dropped) | self.waiting_prompts | self.waiting_groups
        return [pid for pid in (f"{run}-p{k}" for k in range(self.admitted)) if pid not in done]

    def summary(self, run: str) -> dict:
        reasons: dict[str, int] = {}
        for reason in self.dropped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        return {"admitted": self.admitted, "groups_trained": len(self.trained), "dropped": reasons,
                "in_flight": len(self.waiting_prompts | self.waiting_groups), "lost": len(self.lost(run)),
                "duplicated": len(self.duplicated), "regenerations": self.regenerations}


def account(redis_url: str, run: str, out: Path) -> Ledger:
    """The ledger of the run in `out` whose queue is at `redis_url`."""
    from relayrl.learner.checkpoint import latest, read_state
    from relayrl.replay.redis_queue import RedisReplayQueue
    from relayrl.wire import common_pb2

    newest = latest(Path(out) / "checkpoints")
    state = read_state(newest) if newest is not None else {"trained": [], "dropped": {}}
    keys = StreamKeys(run)
    queue = RedisReplayQueue(redis_url)
    try:
        admitted = queue.added(keys.prompts)
        prompts = {common_pb2.Prompt.FromString(p).prompt_id for p in queue.unfinished(keys.prompts, StreamKeys.ACTORS)}
        groups = {common_pb2.Group.FromString(p).group_id for p in queue.unfinished(keys.groups, StreamKeys.LEARNER)}
        regenerations = int(queue.get_value(keys.regenerations) or 0)
    finally:
        queue.close()
    return Ledger(admitted, list(state["trained"]), dict(state["dropped"]), prompts, groups, regenerations)
