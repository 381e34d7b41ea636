"""The rollout actor's worker loop: lease prompts, generate groups, hand them to the reward service.

An actor is a stateless consumer of the prompts stream. Between generations it checks the
announced policy version and, when it differs from its own, pulls the newest version and loads it
(a late joiner thus starts on the newest weights). It submits each group to the reward service
and goes on generating without waiting for the scores; it does not acknowledge the prompt
itself: the reward service does, in the same transaction that stores the scored group, so a
prompt whose group is lost anywhere on the way (an actor or the reward service dies) is leased
again to another actor after the idle timeout, and the learner drops the duplicate if both land.

Nothing is generated twice while the actor is alive: it renews the leases of the prompts it is
generating and submitting (`relayrl.replay.leases`), and the reward service renews them from
then on while the group waits for its rewards. A prompt leased again after a lease expired (its
actor or reward service died, or a group was retried after infrastructure errors) is a
regeneration: counted in `relayrl_prompt_regenerations_total` and the run's Redis counter that
the learner logs. A group the reward service refuses (its prompt is dead-lettered) is logged and
counted, and the actor goes on.

With `rollout.update_every_tokens` > 0 the actor also checks for a new version in the middle of a
generation: the engine pauses every that many tokens, the actor loads the newest version if there
is one, and generation resumes; every token carries the version that produced it.

A version belongs to a learner epoch (a new one each time a learner starts): the actor follows
the announced (version, epoch), so after a learner restart it drops the dead lineage's weights
even when their version number is higher, and every sample carries the epoch of the weights that
began it, so the learner can drop the groups of another lineage.

With `task.agent` set, the group of a SWE prompt is G agent episodes (`rollout.episode`: many
turns of tool calls, each episode in its own sandbox, its final diff graded by the reward
service); the prompt's lease is renewed for as long as they run, like any generation's.
"""

from __future__ import annotations

import logging
import threading
import time

from relayrl.config import RunConfig
from relayrl.replay import Entry, ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.replay.leases import LeaseKeeper
from relayrl.retry import run_until_stopped
from relayrl.rollout import metrics
from relayrl.rollout.engine import Completion, Engine
from relayrl.weights import metrics as weight_metrics
from relayrl.weights.source import WeightSource
from relayrl.wire import common_pb2

log = logging.getLogger("relayrl.actor")


def to_sample(group_id: str, index: int, c: Completion, epoch: str = "") -> common_pb2.Sample:
    return common_pb2.Sample(
        sample_id=f"{group_id}/{index}", prompt_token_ids=c.prompt_token_ids, completion_token_ids=c.token_ids,
        logprobs=c.logprobs, versions=c.versions, text=c.text, finish_reason=c.finish_reason,
        loss_mask=c.loss_mask, turns=c.turns, infra_error=c.infra_error, epoch=epoch)


class Actor:
    """Generates groups for the prompts it leases, following the learner's weight versions."""

    def __init__(self, cfg: RunConfig, actor_id: str, engine: Engine, queue: ReplayQueue,
                 weights: WeightSource, reward) -> None:
        self.cfg, self.actor_id, self.engine = cfg, actor_id, engine
        self.queue, self.weights, self.reward = queue, weights, reward
        self.keys = StreamKeys(cfg.run)
        # the engine serves the loop and the Generate RPC; re-entrant: a mid-generation update
        # loads weights from inside generate, on the thread that holds the lock
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.groups_generated = 0
        self.tokens_generated = 0
        self.epoch: str | None = None
        """Learner epoch of the weights the engine holds; None: its initial `--model` (version 0
        of every lineage), nothing loaded yet."""
        self.leases = LeaseKeeper(queue, self.keys.prompts, StreamKeys.ACTORS, cfg.queue.lease_idle_s / 3, actor_id)
        queue.ensure_group(self.keys.prompts, StreamKeys.ACTORS)
        self.episodes = None  # SWE prompts as agent episodes (task.agent), each in its own sandbox
        if cfg.task.agent is not None:
            from relayrl.rollout.episode import EpisodeRunner

            self.episodes = EpisodeRunner.create(cfg, engine, self.lock, self.follow_weights)

    def announced(self) -> tuple[int, str]:
        """The announced (version, epoch), read together; (-1, "") before the first."""
        version, epoch = self.queue.get_values([self.keys.version, self.keys.epoch])
        return (-1 if version is None else int(version)), epoch or ""

    def announced_version(self) -> int:
        return self.announced()[0]

    def follow_weights(self) -> bool:
        """Load the announced version when it differs from the engine's; True if loaded.

        Usually the learner is ahead. After it crashed and resumed from a checkpoint it is a new
        epoch, behind: the versions after that checkpoint are lost, and an actor that kept them
        must go back, even to a version number it had."""
        announced, epoch = self.announced()
        metrics.VERSION_LAG.set(max(0, announced - self.engine.version))
        if announced < 0 or (announced == self.engine.version and epoch == self.epoch):
            return False
        if self.epoch is None and announced == self.engine.version == 0:
            self.epoch = epoch  # a new lineage's version 0 is the initial model this engine holds
            return False
        t0 = time.perf_counter()
        version, state, epoch = self.weights.fetch(-1)
        with self.lock:
            self.engine.load_weights(state, version)
            self.epoch = epoch
        seconds, size = time.perf_counter() - t0, sum(t.numel() * t.element_size() for t in state.values())
        weight_metrics.WEIGHT_SYNC.labels("actor").observe(seconds)
        weight_metrics.WEIGHT_BYTES.labels("actor").inc(size)
        weight_metrics.POLICY_VERSION.labels("actor").set(version)
        metrics.VERSION_LAG.set(max(0, announced - version))
        log.info("%s loaded version %d in %.4f s (%d bytes: fetched and loaded; learner epoch %s)", self.actor_id,
                 version, seconds, size, epoch or "-")
        return True

    def step(self) -> int:
        """Lease, generate and submit one batch of prompts; return the number of groups submitted."""
        rc = self.cfg.rollout
        entries = self.queue.lease(self.keys.prompts, StreamKeys.ACTORS, self.actor_id, count=rc.prompts_per_batch,
                                   block_s=0.5, reclaim_idle_s=self.cfg.queue.lease_idle_s)
        if not entries:
            return 0
        for entry in entries:  # renewed (once `run` starts the keeper) until the reward service holds them
            self.leases.hold(entry.id, self.actor_id)
        try:
            return self._generate(entries)
        finally:
            for entry in entries:
                self.leases.release(entry.id)

    def _generate(self, entries: list[Entry]) -> int:
        if regenerated := sum(e.deliveries > 1 for e in entries):
            metrics.PROMPT_REGENERATIONS.inc(regenerated)
            self.queue.incr(self.keys.regenerations, regenerated)
            log.warning("%s: %d of %d prompts leased again after a lease expired (generated twice)", self.actor_id,
                        regenerated, len(entries))
        # follow after leasing: the prompt was admitted at a version already announced, so the
        # group is generated by that version or a newer one, never an older one
        self.follow_weights()
        epoch = self.epoch or ""  # the lineage the generation begins with (a mid-generation update may change it)
        prompts = [common_pb2.Prompt.FromString(e.payload) for e in entries]
        groups = self._rollouts(prompts)
        for entry, prompt, completions in zip(entries, prompts, groups):
            group = common_pb2.Group(group_id=prompt.prompt_id, prompt=prompt, actor_id=self.actor_id,
                                     prompt_entry_id=entry.id, prompt_deliveries=entry.deliveries,
                                     samples=[to_sample(prompt.prompt_id, i, c, epoch) for i, c in enumerate(completions)])
            try:
                self.reward.submit(group)
            except ValueError as exc:  # refused (its prompt dead-lettered by the service): the next group
                metrics.GROUPS_REFUSED.inc()
                log.error("%s: the reward service refused group %s: %s", self.actor_id, group.group_id, exc)
                continue
            self.groups_generated += 1
            for c in completions:
                self.tokens_generated += len(c.token_ids)
                metrics.ROLLOUT_TOKENS.inc(len(c.token_ids))
                metrics.ROLLOUT_REQUESTS.inc()
                metrics.RESPONSE_LENGTH.observe(len(c.token_ids))
        return len(groups)

    def _rollouts(self, prompts: list[common_pb2.Prompt]) -> list[list[Completion]]:
        """Each prompt's group: G completions, or G agent episodes for SWE prompts under task.agent
        (the prompts' leases are renewed meanwhile, however long the episodes take)."""
        rc = self.cfg.rollout
        episodic = [self.episodes is not None and p.kind == "swe" for p in prompts]
        groups: list[list[Completion]] = [[] for _ in prompts]
        if plain := [i for i, e in enumerate(episodic) if not e]:
            with self.lock:
                made = self.engine.generate([prompts[i].text for i in plain], rc.sampling, between=self.follow_weights,
                                            update_every=rc.update_every_tokens)
            for i, group in zip(plain, made):
                groups[i] = group
        if agents := [i for i, e in enumerate(episodic) if e]:
            made = self.episodes.run([prompts[i] for i in agents], between=self.follow_weights,
                                     update_every=rc.update_every_tokens)
            for i, group in zip(agents, made):
                groups[i] = group
        return groups

    def close(self) -> None:
        """Release what the actor holds besides its leases (the agent episodes' warm workspaces)."""
        if self.episodes is not None:
            self.episodes.close()

    def run(self) -> None:
        """Loop until `stop` is set. A transient failure (`relayrl.retry.is_transient`: Redis or a
        gRPC peer away, the reward service saturated or closing, a weight version not there yet)
        is retried with backoff: the prompt stays leased, and if this actor gives up it is
        re-leased to another after the idle timeout. Anything else is a bug and ends the actor."""
        def step() -> None:
            if (error := self.leases.failure()) is not None:  # renewals stopped on a bug: so does the actor
                raise error
            self.step()

        self.leases.start()
        try:
            run_until_stopped(step, self.stop, self.actor_id, log)  # a lease blocks 0.5 s: no idle wait
        finally:
            self.leases.stop()
            self.close()
