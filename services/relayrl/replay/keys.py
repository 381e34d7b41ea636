"""The Redis names every part of a run shares (DESIGN.md): one prefix per run, so runs can share
a Redis, and the consumer groups that read each stream."""

from __future__ import annotations


class StreamKeys:
    """Key names of run `run`: `StreamKeys(run).prompts` is `relayrl:{run}:prompts`, and so on."""

    ACTORS = "actors"
    """Consumer group of the prompts stream (rollout actors)."""
    LEARNER = "learner"
    """Consumer group of the scored-groups stream."""
    REWARD_WORKERS = "reward-workers"
    """Consumer group of the slow lane's job stream."""
    REWARD_SERVICE = "reward-service"
    """Consumer group of the slow lane's results stream (the reward service reads it)."""

    def __init__(self, run: str) -> None:
        prefix = f"relayrl:{run}"
        self.prompts = f"{prefix}:prompts"
        self.groups = f"{prefix}:groups"
        self.swe = f"{prefix}:swe"
        self.dead = f"{prefix}:dead"
        self.swe_results = f"{prefix}:swe-results"  # slow-lane results, read by the reward service
        self.version = f"{prefix}:version"  # the newest published version (an integer)
        self.epoch = f"{prefix}:epoch"  # the learner epoch of that version, set with it in one MSET
        self.paused = f"{prefix}:paused"  # "1" while prompt admission is paused (gateway)
        self.regenerations = f"{prefix}:regenerations"  # prompts leased again after a lease expired (a counter)
        self.eval = f"{prefix}:eval"  # held-out evaluation results (JSON), evaluator -> learner
