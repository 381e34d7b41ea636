"""Agent episodes, token in / token out: a SWE task solved over many turns with tools in a sandbox.

An episode starts from its prompt's token ids (the actor's `engine.encode` of the prompt the
learner rendered) and a workspace (`rollout.workspaces`: a sandbox session with the task's
repository). Each turn the engine continues the episode's token ids (`generate_from_ids`: the
history is never decoded and tokenised again), stopping at EOS or once the turn holds a complete
`</tool_call>`; the call is read and run (`rollout.tools.act`), and the observation's tokens are
appended (`ObservationFormat`). Model tokens keep their behaviour logprob and the policy version
that sampled them (weights are followed before every turn, and inside a turn as `generate`
does, so an episode can span versions) with loss mask 1; observation tokens get loss mask 0,
logprob 0 and the version of the turn they answer (so the oldest version in the stream is the
oldest model token's: staleness counts from it). The episode ends when the model submits, or at
`task.agent`'s limits: turns, tokens (`max_tokens`, the model's context), wall clock, tool
budget; a limit is checked between turns (a turn or a command in progress is bounded by its own
token limit or deadline). The last turn's call still runs, so its edit counts.

The episode's result is its final diff (`git diff` of the workspace against its snapshot), read
from the workspace and carried as the sample's text: the reward service grades it with the SWE
verifier on the slow lane, in a fresh sandbox from the pristine snapshot, never in this one.

Infrastructure errors (the workspace could not be prepared, or the sandbox broke before the model
ran a command in it) end an episode without a result; it is run again with a fresh workspace up
to `max_attempts` times, then its sample carries `infra_error` (never judged, never a zero). A
sandbox the model broke (`SessionError.infra` false) ends the episode as the model's failure
(`finish_reason` "sandbox", no diff). Episodes of a batch advance in lockstep: one batched
generation per turn, their tool calls in parallel threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from relayrl.config import RunConfig
from relayrl.reward.errors import TaskError
from relayrl.reward.session import SandboxSession, SessionError
from relayrl.reward.swe.task import SweTask, load_task, task_path
from relayrl.rollout import metrics
from relayrl.rollout.engine import Completion, Engine
from relayrl.rollout.tools import Observation, ObservationFormat, act
from relayrl.rollout.workspaces import WorkspacePool
from relayrl.tasks.agent import CALL_CLOSE
from relayrl.wire import common_pb2

log = logging.getLogger(__name__)

DIFF_TIMEOUT_S = 60.0


@dataclass
class Episode:
    """One episode's token stream and state."""

    prompt_ids: list[int]
    task: SweTask
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    turns: int = 0
    started: float = field(default_factory=time.monotonic)
    session: SandboxSession | None = None
    end: str | None = None
    infra: str | None = None
    diff: str = ""
    after_eos: bool = False

    def add_model(self, c: Completion, eos_id: int) -> None:
        self.ids += c.token_ids
        self.logprobs += c.logprobs
        self.versions += c.versions
        self.mask += [1] * len(c.token_ids)
        self.turns += 1
        self.after_eos = bool(c.token_ids) and c.token_ids[-1] == eos_id

    def add_observation(self, ids: list[int]) -> None:
        version = self.versions[-1] if self.versions else 0
        self.ids += ids
        self.logprobs += [0.0] * len(ids)
        self.versions += [version] * len(ids)
        self.mask += [0] * len(ids)

    def completion(self) -> Completion:
        return Completion(self.prompt_ids, self.ids, self.logprobs, self.versions, self.diff, self.end or "",
                          loss_mask=self.mask, turns=self.turns)


@dataclass
class EpisodeStats:
    """An actor's running totals (its GetStatus RPC, the gateway); thread-safe."""

    in_flight: int = 0
    episodes: int = 0
    turns: int = 0
    wall_s: float = 0.0
    infra_retries: int = 0
    tool_calls: Tally = field(default_factory=Tally)
    """(tool, outcome) -> calls."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Held to read the totals consistently."""

    def add(self, **changes) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, getattr(self, name) + value)

    def call(self, obs: Observation) -> None:
        with self.lock:
            self.tool_calls[(obs.tool, obs.outcome)] += 1


class EpisodeRunner:
    """Plays a batch of prompts' groups of episodes (`run`)."""

    def __init__(self, cfg: RunConfig, engine: Engine, pool: WorkspacePool, lock=None,
                 follow: Callable[[], object] | None = None) -> None:
        if cfg.task.agent is None:
            raise ValueError("task.agent is not set: SWE rows are single completions")
        self.cfg, self.agent, self.engine, self.pool = cfg, cfg.task.agent, engine, pool
        self.lock, self.follow = lock or threading.RLock(), follow
        self.format = ObservationFormat(engine.tokenizer, cfg.task.chat)
        self.threads = ThreadPoolExecutor(max(2, cfg.rollout.prompts_per_batch * cfg.rollout.sampling.group_size),
                                          thread_name_prefix="episode")
        self.stats = EpisodeStats()

    def run(self, prompts: list[common_pb2.Prompt], between=None, update_every: int = 0) -> list[list[Completion]]:
        """`group_size` episodes of each prompt, in prompt order."""
        g = self.cfg.rollout.sampling.group_size
        done: dict[int, Completion] = {}
        todo: list[tuple[int, list[int], SweTask]] = []
        for j, prompt in enumerate(prompts):
            try:
                task = load_task(task_path(prompt.reference, self.cfg.reward.swe.tasks_root))
            except TaskError as exc:  # judged as an infrastructure error too: the reward service dead-letters it
                done.update({j * g + i: self._failed([], f"bad SWE task: {exc}") for i in range(g)})
                continue
            ids = self.engine.encode(prompt.text)
            todo += [(j * g + i, ids, task) for i in range(g)]
        errors: dict[int, str] = {}
        for attempt in range(self.agent.max_attempts):
            if not todo:
                break
            if attempt:
                self.stats.add(infra_retries=len(todo))
            episodes = [Episode(ids, task) for _, ids, task in todo]
            self._play(episodes, between, update_every)
            for (k, _, _), ep in zip(todo, episodes):
                if ep.infra is None:
                    done[k] = ep.completion()
                else:
                    errors[k] = ep.infra
            todo = [t for t, ep in zip(todo, episodes) if ep.infra is not None]
        for k, ids, _ in todo:
            log.warning("an episode failed %d times on infrastructure errors: %s", self.agent.max_attempts, errors[k])
            done[k] = self._failed(ids, errors[k])
        return [[done[j * g + i] for i in range(g)] for j in range(len(prompts))]

    @classmethod
    def create(cls, cfg: RunConfig, engine: Engine, lock=None, follow=None) -> EpisodeRunner:
        """A runner with its own warm pool, its sandboxes limited as SWE jobs (`reward.swe.limits`)."""
        from relayrl.reward.sandbox import Sandbox, SandboxUnavailable

        sandbox = Sandbox(cfg.reward.sandbox.with_limits(cfg.reward.swe.limits))
        if sandbox.mode == "unavailable":  # at start-up, not as an infrastructure error in every episode
            raise SandboxUnavailable("task.agent runs every episode in the sandbox, and bubblewrap (bwrap) is not "
                                     "installed (reward.sandbox.allow_weak: true runs it without namespaces)")
        pool = WorkspacePool(sandbox, cfg.reward.sandbox.python, cfg.task.agent.warm_workspaces)
        return cls(cfg, engine, pool, lock, follow)

    def close(self) -> None:
        """Stop the tool threads and close the warm pool's spares."""
        self.threads.shutdown(wait=True)
        self.pool.close()

    # -- one attempt of a batch of episodes -------------------------------------------------------
    def _play(self, episodes: list[Episode], between, update_every: int) -> None:
        self.stats.add(in_flight=len(episodes))
        metrics.AGENT_IN_FLIGHT.inc(len(episodes))
        try:
            list(self.threads.map(self._acquire, episodes))
            live = [e for e in episodes if e.infra is None]
            while live := [e for e in live if not self._ended(e)]:
                self._turn(live, between, update_every)
            list(self.threads.map(self._finish, [e for e in episodes if e.infra is None]))
        finally:
            for e in episodes:
                if e.session is not None:
                    self.pool.release(e.session)
                    e.session = None
                end, wall = e.end if e.infra is None else "infra_error", time.monotonic() - e.started
                metrics.AGENT_EPISODES.labels(end).inc()
                metrics.AGENT_SECONDS.observe(wall)
                metrics.AGENT_TURNS.observe(e.turns)
            metrics.AGENT_IN_FLIGHT.dec(len(episodes))
            self.stats.add(in_flight=-len(episodes), episodes=len(episodes), turns=sum(e.turns for e in episodes),
                           wall_s=sum(time.monotonic() - e.started for e in episodes))

    def _acquire(self, e: Episode) -> None:
        try:
            e.session = self.pool.acquire(e.task)
        except SessionError as exc:
            e.infra = str(exc)

    def _room(self, e: Episode) -> int:
        """Tokens the episode may still add (its own budget and the model's context)."""
        return min(self.agent.max_tokens - len(e.ids),
                   self.engine.max_new_tokens_limit() - len(e.prompt_ids) - len(e.ids))

    def _ended(self, e: Episode) -> bool:
        """Set `end` when a limit is reached; True once the episode is over."""
        if e.end is None and e.infra is None:
            if time.monotonic() - e.started >= self.agent.max_wall_s:
                e.end = "wall_clock"
            elif e.session is not None and e.session.tool_s >= self.agent.tool_budget_s:
                e.end = "tool_budget"
            elif self._room(e) <= 0:
                e.end = "max_tokens" if self.agent.max_tokens - len(e.ids) <= 0 else "context"
        return e.end is not None or e.infra is not None

    def _turn(self, live: list[Episode], between, update_every: int) -> None:
        budgets = [min(self.agent.max_turn_tokens, self._room(e)) for e in live]
        with self.lock:
            if self.follow is not None:
                self.follow()
            outs = self.engine.generate_from_ids([e.prompt_ids + e.ids for e in live], self.cfg.rollout.sampling,
                                                 budgets, stop=(CALL_CLOSE,), between=between,
                                                 update_every=update_every)
        for e, c in zip(live, outs):
            e.add_model(c, self.engine.eos_id)
        for e, obs in zip(live, self.threads.map(self._act, live, [c.text for c in outs])):
            if obs is None:
                continue
            self.stats.call(obs)
            if obs.submitted:
                e.end = "submit"
            elif e.turns >= self.agent.max_turns:
                e.end = "max_turns"  # the last call ran (its edit counts); no turn reads its output
            else:
                ids = self.engine.encode_continuation(self.format.wrap(obs.text, e.after_eos))
                if len(ids) > self._room(e):
                    e.end = "max_tokens" if len(ids) > self.agent.max_tokens - len(e.ids) else "context"
                else:
                    e.add_observation(ids)

    def _act(self, e: Episode, text: str) -> Observation | None:
        try:
            return act(e.session, text, self.agent)
        except SessionError as exc:
            self._broken(e, exc)
            return None

    def _broken(self, e: Episode, exc: SessionError) -> None:
        if exc.infra:
            e.infra = str(exc)
        else:
            log.info("an episode's sandbox broke after the model ran commands in it: %s", exc)
            e.end = "sandbox"

    def _finish(self, e: Episode) -> None:
        """Read the episode's final diff (none when the model broke its sandbox)."""
        if e.end == "sandbox" or e.session is None:
            return
        try:
            reply = e.session.request("diff", DIFF_TIMEOUT_S, max_output=self.cfg.reward.swe.max_patch_chars + 1)
        except SessionError as exc:
            self._broken(e, exc)
            return
        e.diff = reply.get("diff", "") if isinstance(reply.get("diff"), str) else ""

    def _failed(self, prompt_ids: list[int], reason: str) -> Completion:
        return Completion(prompt_ids, [], [], [], "", "infra_error", infra_error=reason)
