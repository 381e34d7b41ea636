"""The learner loop: admit prompts under the staleness bound, train GRPO on scored groups, publish.

The learner owns the prompt supply: it puts prompts on the prompts stream only while the work in
flight is within AReaL's bound, so no group can be more than `max_staleness` versions old by
the time it is trained, counting the time a group waits for its reward. It leases scored groups
from the groups stream, drops the duplicates (delivery is at-least-once) and the groups grown too
stale (counted), takes one AdamW step per batch of B groups, and publishes the new version:
serialized once into the weight store the gRPC service streams from, then announced in Redis.
Scored groups are acknowledged when the checkpoint that contains their update is on disk.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from relayrl import metrics
from relayrl.config import RunConfig, StreamKeys
from relayrl.learner.weights import WeightStore
from relayrl.replay import ReplayQueue
from relayrl.wire import common_pb2

log = logging.getLogger("relayrl.learner")


@dataclass
class Admission:
    """AReaL's staleness bound on prompt admission.

    With B groups per step and version v (= steps taken), AReaL admits while
    admitted < (max_staleness + v + 1) * B. Groups dropped (stale, infrastructure errors) are
    consumed without advancing v, so the bound here counts consumed groups instead of v * B:
    admitted - consumed < (max_staleness + 1) * B, which equals AReaL's bound when nothing is
    dropped and cannot deadlock when something is.
    """

    batch: int
    max_staleness: int
    admitted: int = 0
    consumed: int = 0

    def room(self) -> int:
        """Prompts that may be admitted now."""
        return max(0, (self.max_staleness + 1) * self.batch - (self.admitted - self.consumed))


@dataclass
class Counters:
    groups_trained: int = 0
    groups_dropped: dict = field(default_factory=lambda: {"stale": 0, "infra_error": 0, "duplicate": 0})
    max_version_lag: int = 0
    last_reward_mean: float = 0.0


def group_staleness(group: common_pb2.Group, version: int) -> int:
    """Versions between the oldest token of the group and the learner's `version`."""
    oldest = min((v for s in group.samples for v in s.versions), default=version)
    return version - oldest


class Learner:
    """One process: policy, optimizer, admission, training, publishing."""

    def __init__(self, cfg: RunConfig, queue: ReplayQueue, model_dir: str, out: Path,
                 consumer: str = "learner-0") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from relayrl.tasks import stream

        hf_logging.disable_progress_bar()
        torch.set_num_threads(cfg.learner.torch_threads)
        torch.manual_seed(cfg.learner.seed)
        self.cfg, self.queue, self.out, self.consumer = cfg, queue, Path(out), consumer
        self.keys = StreamKeys(cfg.run)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model.train()
        self.ref_model = None
        if cfg.learner.kl_beta > 0:
            self.ref_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
            self.ref_model.requires_grad_(False)
        lc = cfg.learner
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lc.lr, weight_decay=lc.weight_decay)
        self.store = WeightStore(keep=lc.keep_versions)
        self.admission = Admission(lc.batch_groups, lc.max_staleness)
        self.counters = Counters()
        self.version = 0
        self.step = 0
        self.done = False
        self.seen: set[str] = set()
        self._unacked: list[str] = []
        self._prompts = stream(cfg.task)
        for stream_name, group in ((self.keys.prompts, StreamKeys.ACTORS), (self.keys.groups, StreamKeys.LEARNER)):
            queue.ensure_group(stream_name, group)
        self.out.mkdir(parents=True, exist_ok=True)
        self._log = open(self.out / "metrics.jsonl", "a")

    # -- publishing ---------------------------------------------------------------------------
    def publish(self) -> None:
        t0 = time.perf_counter()
        item = self.store.publish(self.version, self.model.state_dict(), self.cfg.learner.wire_dtype)
        self.queue.set_value(self.keys.version, str(self.version))
        metrics.WEIGHT_SYNC.labels("learner").observe(time.perf_counter() - t0)
        metrics.WEIGHT_BYTES.labels("learner").inc(len(item.payload))
        metrics.POLICY_VERSION.labels("learner").set(self.version)

    # -- admission ----------------------------------------------------------------------------
    def admit(self) -> int:
        """Put prompts on the prompts stream up to the bound; none while admission is paused."""
        if self.queue.get_value(self.keys.paused) == "1":
            return 0
        n = self.admission.room()
        for _ in range(n):
            item = next(self._prompts)
            pid = f"{self.cfg.run}-p{self.admission.admitted}"
            prompt = common_pb2.Prompt(prompt_id=pid, text=item.text, kind=item.kind, reference=item.answer,
                                       admitted_version=self.version)
            self.queue.put(self.keys.prompts, prompt.SerializeToString())
            self.admission.admitted += 1
        return n

    # -- collecting a batch ---------------------------------------------------------------------
    def _accept(self, entry_id: str, group: common_pb2.Group) -> bool:
        """True when the group is trainable; otherwise it is counted, acknowledged and dropped."""
        reason = None
        staleness = group_staleness(group, self.version)
        if group.group_id in self.seen:
            reason = "duplicate"
        else:
            self.seen.add(group.group_id)
            self.counters.max_version_lag = max(self.counters.max_version_lag, staleness)
            valid = [s for s in group.scores if s.outcome != common_pb2.OUTCOME_INFRA_ERROR]
            if staleness > self.cfg.learner.max_staleness:
                reason = "stale"
            elif len(valid) < 2 or len(group.scores) != len(group.samples):
                reason = "infra_error"
        if reason is None:
            return True
        self.counters.groups_dropped[reason] += 1
        metrics.GROUPS_DROPPED.labels(reason).inc()
        if reason != "duplicate":
            self.admission.consumed += 1
        self.queue.ack(self.keys.groups, StreamKeys.LEARNER, [entry_id])
        return False

    def collect(self) -> list[tuple[str, common_pb2.Group]]:
        batch: list[tuple[str, common_pb2.Group]] = []
        want = self.cfg.learner.batch_groups
        while len(batch) < want:
            self.admit()
            entries = self.queue.lease(self.keys.groups, StreamKeys.LEARNER, self.consumer,
                                       count=want - len(batch), block_s=0.2)
            for entry in entries:
                group = common_pb2.Group.FromString(entry.payload)
                if self._accept(entry.id, group):
                    batch.append((entry.id, group))
        return batch

    # -- one optimizer step ---------------------------------------------------------------------
    def train_step(self, groups: list[common_pb2.Group]) -> dict:
        import torch

        from relayrl.learner.grpo import build_batch, grpo_loss, group_advantages, masked_mean, token_logprobs

        lc, temp = self.cfg.learner, self.cfg.rollout.sampling.temperature
        rows, advs, rewards, staleness = [], [], [], []
        for g in groups:
            keep = [i for i, s in enumerate(g.scores) if s.outcome != common_pb2.OUTCOME_INFRA_ERROR]
            r = torch.tensor([g.scores[i].reward for i in keep])
            advs.append(group_advantages(r, lc.adv_eps))
            rewards.extend(r.tolist())
            staleness.append(group_staleness(g, self.version))
            for i in keep:
                s = g.samples[i]
                rows.append((list(s.prompt_token_ids), list(s.completion_token_ids), list(s.logprobs)))
        batch = build_batch(rows, self.tokenizer.pad_token_id)
        advantages = torch.cat(advs).float()
        logp, entropy = token_logprobs(self.model, batch, temp)
        ref = None
        if self.ref_model is not None:
            with torch.no_grad():
                ref, _ = token_logprobs(self.ref_model, batch, temp)
        loss, stats = grpo_loss(logp, batch.behaviour_logprobs, advantages, batch.loss_mask, lc.clip_eps,
                                ref, lc.kl_beta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), lc.grad_clip)
        self.optimizer.step()
        tokens = int(batch.loss_mask.sum())
        for s in staleness:
            metrics.STALENESS.observe(s)
        metrics.LEARNER_TOKENS.inc(tokens)
        lengths = batch.loss_mask.sum(-1)
        return {"loss": float(loss.detach()), "reward_mean": sum(rewards) / len(rewards), "grad_norm": float(grad_norm),
                "entropy": float(masked_mean(entropy.detach(), batch.loss_mask)), "tokens": tokens,
                "response_length_mean": float(lengths.mean()), "staleness_max": max(staleness),
                "staleness_mean": sum(staleness) / len(staleness), **stats}

    def _observe_queues(self) -> None:
        for name, stream_key, group in (("prompts", self.keys.prompts, StreamKeys.ACTORS),
                                        ("groups", self.keys.groups, StreamKeys.LEARNER)):
            metrics.QUEUE_DEPTH.labels(name).set(self.queue.lag(stream_key, group))
            metrics.QUEUE_PENDING.labels(name).set(self.queue.pending(stream_key, group))

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Save a Hugging Face directory atomically, then acknowledge the groups it includes."""
        final = self.out / "checkpoints" / f"step-{self.step:06d}"
        tmp = final.with_name(final.name + ".tmp")
        self.model.save_pretrained(tmp, safe_serialization=True)
        self.tokenizer.save_pretrained(tmp)
        (tmp / "relayrl.json").write_text(json.dumps({"version": self.version, "step": self.step}))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        if self._unacked:
            self.queue.ack(self.keys.groups, StreamKeys.LEARNER, self._unacked)
            self._unacked = []
        return final

    # -- the loop -------------------------------------------------------------------------------
    def run(self, steps: int | None = None, on_step=None) -> Counters:
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
            self.admission.consumed += len(batch)
            self.counters.groups_trained += len(batch)
            self.counters.last_reward_mean = stats["reward_mean"]
            self._unacked += [eid for eid, _ in batch]
            self.publish()
            t2 = time.perf_counter()
            metrics.LEARNER_WAIT.observe(t1 - t0)
            metrics.LEARNER_STEP.observe(t2 - t1)
            metrics.GROUPS_TRAINED.inc(len(batch))
            metrics.LEARNER_REWARD.set(stats["reward_mean"])
            self._observe_queues()
            record = {"step": self.step, "version": self.version, "groups": len(batch),
                      "wait_s": round(t1 - t0, 4), "train_s": round(t2 - t1, 4),
                      "wall_s": round(t2 - t_start, 3), **stats}
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()
            if self.step % self.cfg.learner.checkpoint_every == 0 or self.step == steps:
                self.checkpoint()
            if on_step:
                on_step(record)
        self.done = True
        self._log.close()
        c = self.counters
        status = {"version": self.version, "step": self.step, "groups_trained": c.groups_trained,
                  "groups_dropped_stale": c.groups_dropped["stale"], "groups_dropped": c.groups_dropped,
                  "prompts_admitted": self.admission.admitted, "max_version_lag": c.max_version_lag,
                  "wall_s": round(time.perf_counter() - t_start, 3)}
        (self.out / "learner-status.json").write_text(json.dumps(status, indent=2) + "\n")
        return c
