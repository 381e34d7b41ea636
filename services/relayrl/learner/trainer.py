"""The learner loop: collect a batch, train it, publish the new version, checkpoint, log.

Three parts that do not know each other, tied together here:

- `intake.Intake`: admission of prompts under the staleness bound, leasing scored groups, dedup
  and drops, and the acknowledgements a checkpoint releases (torch-free);
- `policy.Policy`: the model, optimizer, scheduler, reference model and updater (one process or
  FSDP2 under torchrun);
- `runlog.RunLog`: metrics.jsonl, ledger.jsonl and learner-status.json.

Each step trains one batch of B groups with the configured algorithm and publishes the new
version: serialized once into the weight store the gRPC service streams from, then announced in
Redis. Every leased group, trained or dropped, is acknowledged only when the checkpoint that
records it is durable (`checkpoint`); `resume=True` restarts from the newest checkpoint, re-leases
the groups this consumer held unacknowledged, and continues the prompt stream where Redis says it
stopped, so a learner killed at any moment loses no group and trains none twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from relayrl import metrics
from relayrl.config import RunConfig
from relayrl.learner import checkpoint as ckpt
from relayrl.learner.intake import Admission, Counters, Intake, group_staleness
from relayrl.learner.runlog import RunLog
from relayrl.learner.spec import resolve
from relayrl.replay import ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.retry import retry
from relayrl.weights.store import WeightStore
from relayrl.wire import common_pb2

log = logging.getLogger("relayrl.learner")


class Learner:
    """One learner process: intake, policy and run log, stepped in lock-step with checkpoints."""

    def __init__(self, cfg: RunConfig, queue: ReplayQueue, model_dir: str, out: Path,
                 consumer: str = "learner-0", resume: bool = False) -> None:
        from relayrl.learner.policy import Policy  # torch and transformers: only when a learner is built

        self.cfg, self.queue, self.out, self.consumer = cfg, queue, Path(out), consumer
        self.keys = StreamKeys(cfg.run)
        self.spec = resolve(cfg.learner.loss, cfg.rollout.sampling.max_new_tokens)
        ckpt.remove_partial(self.out / "checkpoints")
        start = ckpt.latest(self.out / "checkpoints") if resume else None
        self.policy = Policy(cfg, self.spec, model_dir, start)
        state = ckpt.read_state(start) if start is not None else None
        self.intake = Intake(cfg, queue, self.spec, self.policy.tokenizer, consumer, state, resume)
        self.version, self.step = (state["version"], state["step"]) if state else (0, 0)
        self.store = WeightStore(keep=cfg.learner.weights.keep_versions)
        self.done = False
        self.runlog = RunLog(self.out, resumed_step=self.step if state else None)
        log.info("learner: %s, resumed from %s, %d groups to re-lease", self.spec, start, len(self.intake.redeliver))

    # what the gRPC service and the launcher read
    @property
    def counters(self) -> Counters:
        return self.intake.counters

    @property
    def admission(self) -> Admission:
        return self.intake.admission

    @property
    def updater(self):
        """The policy's updater (`rank` > 0: a torchrun follower of rank 0)."""
        return self.policy.updater

    def admit(self) -> int:
        return self.intake.admit(self.version)

    def collect(self) -> list[tuple[str, common_pb2.Group]]:
        return self.intake.collect(self.version)

    def publish(self) -> None:
        """Serialize the current version into the weight store, then announce it in Redis."""
        t0 = time.perf_counter()
        item = self.policy.publish(self.store, self.version, self.cfg.learner.weights.wire_dtype)
        retry(lambda: self.queue.set_value(self.keys.version, str(self.version)), "learner: announcing a version", log)
        metrics.WEIGHT_SYNC.labels("learner").observe(time.perf_counter() - t0)
        metrics.WEIGHT_BYTES.labels("learner").inc(len(item.payload))
        metrics.POLICY_VERSION.labels("learner").set(self.version)

    def train_step(self, groups: list[common_pb2.Group]) -> dict:
        """One batch through the policy; its statistics with the groups' staleness."""
        staleness = [group_staleness(g, self.version) for g in groups]
        stats = self.policy.train(groups)
        for s in staleness:
            metrics.STALENESS.observe(s)
        metrics.LEARNER_TOKENS.inc(stats["tokens"])
        return {**stats, "staleness_max": max(staleness), "staleness_mean": sum(staleness) / len(staleness)}

    def checkpoint(self) -> Path:
        """Save a durable checkpoint, then acknowledge every group it records (trained or dropped)."""
        p = self.policy
        state = {"version": self.version, "step": self.step, "algorithm": self.spec.name, **self.intake.state()}
        final = p.save(self.out / "checkpoints" / f"step-{self.step:06d}", state)
        self.intake.acknowledge()
        return final

    def run(self, steps: int | None = None, on_step=None) -> Counters:
        """Train until `steps` steps in all (resumed ones included), calling `on_step(record)` after
        each; then release any other ranks and write learner-status.json."""
        steps = steps or self.cfg.learner.steps
        self.publish()
        t_start = time.perf_counter()
        while self.step < steps:
            t0 = time.perf_counter()
            batch = self.collect()
            t1 = time.perf_counter()
            stats = self.train_step([g for _, g in batch])
            self.step += 1
            self.version += 1
            self.intake.trained_batch(batch)
            self.counters.last_reward_mean = stats["reward_mean"]
            self.runlog.trained(self.step, [g.group_id for _, g in batch])
            self.publish()
            t2 = time.perf_counter()
            metrics.LEARNER_WAIT.observe(t1 - t0)
            metrics.LEARNER_STEP.observe(t2 - t1)
            metrics.GROUPS_TRAINED.inc(len(batch))
            metrics.LEARNER_REWARD.set(stats["reward_mean"])
            self.intake.observe_queues()
            record = self.runlog.step(self.step, self.version, len(batch), t1 - t0, t2 - t1, t2 - t_start, stats)
            if self.step % self.cfg.learner.checkpoint.every == 0 or self.step == steps:
                self.checkpoint()
            if on_step:
                on_step(record)
        self.policy.finish()
        self.done = True
        c = self.counters
        self.runlog.close({"version": self.version, "step": self.step, "groups_trained": c.groups_trained,
                           "groups_dropped_stale": c.groups_dropped["stale"], "groups_dropped": c.groups_dropped,
                           "algorithm": self.spec.name, "prompts_admitted": self.admission.admitted,
                           "max_version_lag": c.max_version_lag, "wall_s": round(time.perf_counter() - t_start, 3)})
        return c
