"""Prompts the reward service will not score go to the dead letters, counted, and nothing stalls.

Real parts: a real Redis, the reward service (over gRPC where an actor talks to it), real actors
generating with the tiny model, math-verify, the SWE verifier loading tasks from disk, the
learner's torch-free intake. A refused prompt (an unknown kind, a SWE task that does not load)
lands on `relayrl:{run}:dead` with its reason while the actor keeps running; a group whose samples
end in infrastructure errors is not consumed but generated again, and dead-lettered once its
prompt has been leased `reward.max_group_attempts` times; the learner counts every dead-lettered
prompt as consumed, so its admission bound goes on admitting.
"""

from __future__ import annotations

import json
import os
import signal
import threading

from relayrl.config import RewardConfig, RunConfig
from relayrl.learner.intake import Intake
from relayrl.learner.spec import resolve
from relayrl.replay import RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.reward.client import GrpcRewardClient
from relayrl.reward.handoff import DEAD_PROMPTS
from relayrl.reward.server import serve
from relayrl.reward.service import RewardService
from relayrl.rollout import metrics
from relayrl.rollout.actor import Actor
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights.source import InProcessWeightSource
from relayrl.weights.store import WeightStore
from relayrl.wire import common_pb2

RUN = "dead"
K = StreamKeys(RUN)




def prompt(n: int, kind: str = "math", reference: str = "5") -> common_pb2.Prompt:
    return common_pb2.Prompt(prompt_id=f"{RUN}-p{n}", text="2+3=", kind=kind, reference=reference)


def group(entry: str, p: common_pb2.Prompt, texts: list[str], actor: str = "actor-t", deliveries: int = 1):
    return common_pb2.Group(group_id=p.prompt_id, prompt=p, actor_id=actor, prompt_entry_id=entry,
                            prompt_deliveries=deliveries, samples=[common_pb2.Sample(sample_id=f"{p.prompt_id}/{i}", text=t)
                                                                   for i, t in enumerate(texts)])


def all_groups(queue: RedisReplayQueue) -> list[common_pb2.Group]:
    """Every group written so far (this reader never acknowledges, so it re-reads its own first)."""
    queue.ensure_group(K.groups, StreamKeys.LEARNER)
    entries = queue.pending_for(K.groups, StreamKeys.LEARNER, "test") + queue.lease(K.groups, StreamKeys.LEARNER,
                                                                                     "test", count=100)
    return [common_pb2.Group.FromString(e.payload) for e in entries]


def letters(queue: RedisReplayQueue) -> list[dict]:
    return [json.loads(p) for p in reversed(queue.recent(K.dead, 100))]


def test_the_actor_keeps_running_while_refused_prompts_are_dead_lettered(redis_url, tiny_model_dir, wait_for):
    cfg = RunConfig.model_validate({"run": RUN, "queue": {"type": "redis", "url": redis_url},
                                    "rollout": {"prompts_per_batch": 1, "sampling": {"group_size": 2, "max_new_tokens": 4}}})
    queue = RedisReplayQueue(redis_url)
    server = serve(cfg.reward, queue, RUN)
    actor = Actor(cfg, "actor-0", TransformersEngine(str(tiny_model_dir)), queue, InProcessWeightSource(WeightStore()),
                  GrpcRewardClient(server.address))
    for p in (prompt(0, kind="poetry"), prompt(1, kind="swe", reference="/no/such/task"), prompt(2)):
        queue.put(K.prompts, p.SerializeToString())
    refused, dead = metrics.GROUPS_REFUSED._value.get(), DEAD_PROMPTS.labels("swe")._value.get()
    error: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(actor, error), daemon=True)
    thread.start()
    try:
        groups = wait_for(lambda: len(g := all_groups(queue)) >= 3 and g, 120, "three groups or markers")
        assert thread.is_alive() and not error, error
        by_id = {g.group_id: g for g in groups}
        assert "unknown task kind 'poetry'" in by_id[f"{RUN}-p0"].dead_letter and not by_id[f"{RUN}-p0"].samples
        assert "bad SWE task" in by_id[f"{RUN}-p1"].dead_letter
        assert not by_id[f"{RUN}-p2"].dead_letter and len(by_id[f"{RUN}-p2"].scores) == 2
        got = letters(queue)
        assert [d["prompt"]["prompt_id"] for d in got] == [f"{RUN}-p0", f"{RUN}-p1"]
        assert "unknown task kind" in got[0]["reason"] and "no/such/task" in got[1]["reason"]
        assert {d["actor_id"] for d in got} == {"actor-0"}
        assert queue.pending(K.prompts, StreamKeys.ACTORS) == 0  # every prompt acknowledged, none left to expire
        assert metrics.GROUPS_REFUSED._value.get() - refused == 2
        assert DEAD_PROMPTS.labels("swe")._value.get() - dead == 1
    finally:
        actor.stop.set()
        thread.join(timeout=30)
        server.stop(grace=1)


def _run(actor: Actor, error: list) -> None:
    try:
        actor.run()
    except BaseException as exc:
        error.append(exc)


def test_a_group_ending_in_infra_errors_is_generated_again_then_dead_lettered(redis_url, wait_for):
    queue = RedisReplayQueue(redis_url)
    queue.ensure_group(K.prompts, StreamKeys.ACTORS)
    cfg = RewardConfig(workers=1, timeout_s=0.5, max_attempts=1, max_group_attempts=2)
    service = RewardService(cfg, queue, RUN, prompt_lease_s=0.5)
    # answers the fast path cannot decide (they need a math-verify worker), new in each generation
    # (a verdict is remembered per answer)
    slow = ["\\boxed{\\sqrt{25}}", "\\boxed{\\sqrt{26}}"]

    def stop_the_workers() -> None:  # stopped, as on a host too loaded to run them: an infrastructure error
        workers = service.verifiers["math"].workers
        assert workers.verify("\\boxed{1}", "1").ok  # a failed worker is replaced when next needed: now
        for pid in workers.pids():
            os.kill(pid, signal.SIGSTOP)
    try:
        entry = queue.put(K.prompts, prompt(0).SerializeToString())
        (first,) = queue.lease(K.prompts, StreamKeys.ACTORS, "actor-a", count=1)
        stop_the_workers()
        assert service.submit(group(entry, prompt(0), slow, "actor-a", first.deliveries))
        wait_for(lambda: service.status().groups_in_flight == 0, 30, "the first group to be scored")
        assert all_groups(queue) == [] and letters(queue) == []  # not consumed: nothing for the learner
        # not acknowledged and no longer renewed: its lease expires and another actor takes it
        (again,) = wait_for(lambda: queue.lease(K.prompts, StreamKeys.ACTORS, "actor-b", 1, reclaim_idle_s=0.5), 10,
                            "the prompt to be re-leased")
        assert again.id == entry and again.deliveries == 2
        # the regenerated group scores infra errors again: the prompt's second lease is its last
        stop_the_workers()  # the ones that replaced them
        slow = ["\\boxed{\\sqrt{27}}", "\\boxed{\\sqrt{28}}"]
        try:
            service.submit(group(entry, prompt(0), slow, "actor-b", again.deliveries))
        except ValueError as exc:  # not raised: the group was accepted, and is dead-lettered when scored
            raise AssertionError(exc) from exc
        (marker,) = wait_for(lambda: all_groups(queue), 30, "the dead-letter marker")
        assert marker.group_id == f"{RUN}-p0" and "infrastructure errors in 2 generations" in marker.dead_letter
        (letter,) = letters(queue)
        assert letter["deliveries"] == 2 and letter["actor_id"] == "actor-b"
        assert queue.pending(K.prompts, StreamKeys.ACTORS) == 0
    finally:
        service.close(drain=False)


def test_dead_lettered_prompts_count_as_consumed_so_admission_goes_on(redis_url, wait_for):
    cfg = RunConfig.model_validate({"run": RUN, "learner": {"batch_groups": 2, "max_staleness": 0},
                                    "rollout": {"sampling": {"group_size": 2}}})
    queue = RedisReplayQueue(redis_url)
    intake = Intake(cfg, queue, resolve(cfg.learner.loss, cfg.rollout.sampling.max_new_tokens), tokenizer=None)
    service = RewardService(cfg.reward, queue, RUN)
    try:
        assert intake.admit(version=0) == 2 and intake.admission.room() == 0
        # an actor generates both admitted prompts as a kind no verifier scores: both refused
        for entry in queue.lease(K.prompts, StreamKeys.ACTORS, "actor-t", count=2):
            p = common_pb2.Prompt.FromString(entry.payload)
            p.kind = "poetry"
            try:
                service.submit(group(entry.id, p, ["a", "b"]))
                raise AssertionError("a prompt of an unknown kind was accepted")
            except ValueError as exc:
                assert "dead-lettered" in str(exc)
        batch: list = []
        collecting = threading.Thread(target=lambda: batch.extend(intake.collect(version=0)), daemon=True)
        collecting.start()
        # the learner drops the two markers, which frees their slots: two new prompts are admitted
        fresh: list = []
        wait_for(lambda: fresh.extend(queue.lease(K.prompts, StreamKeys.ACTORS, "actor-t", count=2)) or len(fresh) == 2,
                 30, "prompts admitted after the dead-lettered ones")
        assert [common_pb2.Prompt.FromString(e.payload).prompt_id for e in fresh] == [f"{RUN}-p2", f"{RUN}-p3"]
        for entry in fresh:
            assert service.submit(group(entry.id, common_pb2.Prompt.FromString(entry.payload),
                                        ["\\boxed{5}", "\\boxed{4}"]))
        collecting.join(timeout=60)
        assert sorted(g.group_id for _, g in batch) == [f"{RUN}-p2", f"{RUN}-p3"]
        assert intake.counters.groups_dropped["dead_letter"] == 2
        assert intake.dropped == {f"{RUN}-p0": "dead_letter", f"{RUN}-p1": "dead_letter"}
        state = intake.state()  # what the next checkpoint records, before it acknowledges the markers
        assert state["consumed"] == 2 and state["admitted"] == 4 and len(intake.to_ack) == 2
    finally:
        service.close(drain=False)
