"""The learner's intake on the in-memory queue, without a model: the admission bound, every drop
reason, redelivery to a restarted consumer, recovery after a Redis outage, and that the learner's
parts (intake, policy, run log) do not import each other."""


import pytest
import redis

from relayrl.config import LearnerConfig, RunConfig
from relayrl.learner.intake import Admission, Intake
from relayrl.learner.spec import resolve
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.wire import common_pb2

KEYS = StreamKeys("default")


def make_group(gid, versions, rewards, outcome=common_pb2.OUTCOME_PASS):
    samples = [common_pb2.Sample(sample_id=f"{gid}/{i}", prompt_token_ids=[1, 9, 20], completion_token_ids=[10, 2],
                                 logprobs=[-3.0, -3.0], versions=[v, v]) for i, v in enumerate(versions)]
    scores = [common_pb2.Score(outcome=outcome if r is not None else common_pb2.OUTCOME_INFRA_ERROR, reward=r or 0.0)
              for r in rewards]
    return common_pb2.Group(group_id=gid, samples=samples, scores=scores)


def make_intake(queue, state=None, epoch="", max_new_tokens=16, **learner):
    cfg = RunConfig(learner=LearnerConfig(**{"batch_groups": 2, "max_staleness": 1, **learner}),
                    rollout={"sampling": {"max_new_tokens": max_new_tokens}})
    spec = resolve(cfg.learner.loss, cfg.rollout.sampling.max_new_tokens)
    return Intake(cfg, queue, spec, tokenizer=None, state=state, epoch=epoch)  # no chat: no tokenizer needed


def put(queue, *groups):
    for g in groups:
        queue.put(KEYS.groups, g.SerializeToString())


def test_admission_bound_is_arealS_when_nothing_is_dropped():
    a = Admission(batch=4, max_staleness=1)
    assert a.room() == 8  # (max_staleness + version + 1) * batch with version 0
    a.admitted = 8
    assert a.room() == 0
    a.consumed = 4  # one step trained: version 1 allows 12 admitted in all
    assert a.room() == 4


def test_admit_stops_at_the_bound_and_a_trained_batch_makes_room():
    queue = MemoryReplayQueue()
    intake = make_intake(queue)
    assert intake.admit(version=0) == 4 and intake.admit(version=0) == 0
    put(queue, make_group("a", [0, 0], [1.0, 0.0]), make_group("b", [0, 0], [0.0, 1.0]))
    intake.trained_batch(intake.collect(version=0))
    assert intake.admit(version=1) == 2
    prompts = [common_pb2.Prompt.FromString(e.payload) for e in queue.lease(KEYS.prompts, StreamKeys.ACTORS, "a", 10)]
    assert [p.prompt_id for p in prompts] == [f"default-p{k}" for k in range(6)]
    assert [p.admitted_version for p in prompts] == [0, 0, 0, 0, 1, 1]


def test_stale_and_infra_error_groups_are_dropped_counted_and_free_their_slots():
    queue = MemoryReplayQueue()
    intake = make_intake(queue, batch_groups=1)
    put(queue, make_group("stale", [1, 2], [1.0, 0.0]),           # oldest token 2 versions old > max_staleness 1
        make_group("one-left", [3, 3], [None, 1.0]),              # one scored sample after the infra error
        make_group("unscored", [3, 3], [1.0]),                    # fewer scores than samples
        make_group("ok", [3, 3], [1.0, 0.0]))
    assert [g.group_id for _, g in intake.collect(version=3)] == ["ok"]
    assert intake.counters.groups_dropped == {"stale": 1, "infra_error": 2, "duplicate": 0, "zero_variance": 0, "epoch": 0}
    assert intake.dropped == {"stale": "stale", "one-left": "infra_error", "unscored": "infra_error"}
    assert intake.admission.consumed == 3 and intake.counters.max_version_lag == 2
    assert len(intake.to_ack) == 3  # acknowledged with the checkpoint that records the drops


def test_a_redelivered_group_is_a_duplicate_and_is_acknowledged_with_the_drops():
    queue = MemoryReplayQueue()
    intake = make_intake(queue, batch_groups=1)
    put(queue, make_group("ok", [0, 0], [1.0, 0.0]), make_group("ok", [0, 0], [1.0, 0.0]),
        make_group("next", [0, 0], [0.0, 1.0]))
    intake.trained_batch(intake.collect(version=0))
    assert [g.group_id for _, g in intake.collect(version=0)] == ["next"]
    assert intake.counters.groups_dropped["duplicate"] == 1 and "ok" not in intake.dropped
    assert intake.admission.consumed == 1  # a duplicate was never admitted twice: it frees nothing
    assert queue.pending(KEYS.groups, StreamKeys.LEARNER) == 3  # nothing acknowledged before a checkpoint
    intake.acknowledge()
    assert queue.pending(KEYS.groups, StreamKeys.LEARNER) == 1 and intake.to_ack == []  # "next": not trained yet


def test_dynamic_sampling_drops_groups_whose_shaped_rewards_are_equal():
    # DAPO with max_new_tokens 2 and an overlong buffer of 1: a 2-token completion costs the full penalty
    queue = MemoryReplayQueue()
    intake = make_intake(queue, batch_groups=1, loss={"algorithm": "dapo", "overlong_buffer": 1}, max_new_tokens=2)
    short = make_group("shaped-equal", [0, 0], [1.0, 0.0])
    short.samples[1].completion_token_ids[:] = [2]  # 1 token: no penalty; sample 0 (2 tokens): 1 - 1 = 0
    short.samples[1].logprobs[:] = [-3.0]
    put(queue, make_group("same", [0, 0], [1.0, 1.0]), short, make_group("mixed", [0, 0], [1.0, 0.0]))
    assert [g.group_id for _, g in intake.collect(version=0)] == ["mixed"]
    assert intake.dropped == {"same": "zero_variance", "shaped-equal": "zero_variance"}
    assert intake.counters.groups_dropped["zero_variance"] == 2


def test_a_restarted_consumer_gets_its_unacknowledged_groups_first():
    queue = MemoryReplayQueue()
    first = make_intake(queue)
    put(queue, *(make_group(f"g{k}", [0, 0], [1.0, 0.0]) for k in range(4)))
    trained = first.collect(version=0)
    first.trained_batch(trained)
    first.acknowledge()  # a checkpoint with g0, g1
    state = first.state()
    lost = first.collect(version=0)  # leased, then the process dies: never acknowledged
    assert [g.group_id for _, g in lost] == ["g2", "g3"]
    put(queue, make_group("g1", [0, 0], [1.0, 0.0]),  # a late re-delivery of a trained group
        make_group("g4", [0, 0], [1.0, 0.0]), make_group("g5", [0, 0], [0.0, 1.0]))

    second = make_intake(queue, state=state)  # a restart continues the stream: no flag
    assert [e.id for e in second.redeliver] == [eid for eid, _ in lost]
    assert second.admission.admitted == first.admission.admitted  # the prompt stream continues
    assert [g.group_id for _, g in second.collect(version=1)] == ["g2", "g3"]
    assert second.trained == ["g0", "g1"] and second.counters.groups_trained == 2
    assert [g.group_id for _, g in second.collect(version=1)] == ["g4", "g5"]
    assert second.counters.groups_dropped["duplicate"] == 1


class Outage:
    """A MemoryReplayQueue behind a Redis that goes away: the next lease is carried out and its
    reply lost, then the next `calls_down` calls of any kind raise redis.ConnectionError. A lease
    that finds nothing `max_empty_leases` times running raises (a stuck intake fails the test)."""

    def __init__(self, inner: MemoryReplayQueue, calls_down: int, max_empty_leases: int = 10) -> None:
        self.inner, self.calls_down, self.max_empty = inner, calls_down, max_empty_leases
        self.lose_next_lease, self.empty = False, 0

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(*args, **kwargs):
            if self.calls_down > 0 and not self.lose_next_lease:
                self.calls_down -= 1
                raise redis.ConnectionError("Redis is restarting (simulated)")
            result = method(*args, **kwargs)
            if name == "lease" and self.lose_next_lease:
                self.lose_next_lease = False
                raise redis.ConnectionError("connection reset while reading the reply (simulated)")
            if name == "lease":
                self.empty = 0 if result else self.empty + 1
                if self.empty >= self.max_empty:
                    raise AssertionError("the intake keeps leasing nothing: groups leased to it are lost")
            return result

        return call


def test_recovers_the_groups_of_a_lease_whose_reply_redis_lost():
    inner = MemoryReplayQueue()
    intake = make_intake(inner)
    put(inner, make_group("g0", [0, 0], [1.0, 0.0]), make_group("g1", [0, 0], [0.0, 1.0]))
    intake.queue = flaky = Outage(inner, calls_down=2)
    flaky.lose_next_lease = True
    batch = intake.collect(version=0)
    assert [g.group_id for _, g in batch] == ["g0", "g1"] and flaky.calls_down == 0
    assert inner.pending(KEYS.groups, StreamKeys.LEARNER) == 2 and intake.to_ack == []


def test_a_lost_admission_reply_admits_no_prompt_twice():
    inner = MemoryReplayQueue()
    intake = make_intake(inner)
    put(inner, make_group("g0", [0, 0], [1.0, 0.0]), make_group("g1", [0, 0], [0.0, 1.0]))

    class LosePut(Outage):
        def __getattr__(self, name):
            if name == "put_once" and self.calls_down:
                def lost(*args):
                    self.inner.put_once(*args)
                    self.calls_down -= 1
                    raise redis.ConnectionError("reply lost (simulated)")
                return lost
            return getattr(self.inner, name)

    intake.queue = LosePut(inner, calls_down=1)
    intake.collect(version=0)
    prompts = [common_pb2.Prompt.FromString(e.payload).prompt_id
               for e in inner.lease(KEYS.prompts, StreamKeys.ACTORS, "a", 100)]
    assert prompts == [f"default-p{k}" for k in range(4)] and intake.admission.admitted == 4


def test_a_bug_is_not_an_outage_it_propagates():
    inner = MemoryReplayQueue()
    intake = make_intake(inner)

    class Broken(Outage):
        def __getattr__(self, name):
            if name == "lease":
                def lease(*args, **kwargs):
                    raise KeyError("a bug, not Redis being away")
                return lease
            return getattr(self.inner, name)

    intake.queue = Broken(inner, calls_down=0)
    with pytest.raises(KeyError, match="a bug"):
        intake.collect(version=0)


def with_epoch(group: common_pb2.Group, epoch: str) -> common_pb2.Group:
    for s in group.samples:
        s.epoch = epoch
    return group


def test_groups_of_another_learner_epoch_are_dropped_counted_and_free_their_slots():
    """After a restart the versions of the dead lineage mean nothing: its groups are dropped as
    `epoch`, whatever their version numbers say; groups of an actor that predates epochs ("")
    are judged by their versions alone."""
    queue = MemoryReplayQueue()
    intake = make_intake(queue, epoch="new")
    assert intake.admit(version=5) == 4
    put(queue, with_epoch(make_group("old", [5, 5], [1.0, 0.0]), "old"),
        with_epoch(make_group("mine", [5, 5], [1.0, 0.0]), "new"), make_group("legacy", [5, 5], [0.0, 1.0]))
    assert [g.group_id for _, g in intake.collect(version=5)] == ["mine", "legacy"]
    assert intake.counters.groups_dropped["epoch"] == 1 and intake.dropped == {"old": "epoch"}
    assert intake.admission.consumed == 1 and intake.admission.admitted == 5  # collect filled the freed slot


def test_a_numbered_put_that_finds_its_prompt_there_resynchronises_instead_of_counting_it():
    """Two learners of one run (a restarted one racing the old, or a second by mistake): the one
    that finds its prompt numbers taken continues after them and counts only what it put."""
    queue = MemoryReplayQueue()
    early, late = make_intake(queue), make_intake(queue)  # both see an empty stream
    assert early.admit(version=0) == 4
    assert late.admit(version=0) == 0  # p0 is there: it resynchronises to 4 admitted, the bound
    assert late.admission.admitted == queue.added(KEYS.prompts) == 4
    late.admission.consumed = 2  # two groups trained: room for two more
    assert late.admit(version=1) == 2
    prompts = [common_pb2.Prompt.FromString(e.payload) for e in queue.lease(KEYS.prompts, StreamKeys.ACTORS, "a", 10)]
    assert [p.prompt_id for p in prompts] == [f"default-p{k}" for k in range(6)]  # each number once
    # the late one continued the same deterministic prompt stream, not its start again
    reference = make_intake(MemoryReplayQueue())
    reference.admission.consumed = 2
    reference.admit(version=0)
    reference.admit(version=0)
    expected = [common_pb2.Prompt.FromString(e.payload).text
                for e in reference.queue.lease(KEYS.prompts, StreamKeys.ACTORS, "a", 10)]
    assert [p.text for p in prompts] == expected


def test_a_new_lineage_over_a_used_stream_counts_what_was_consumed_before_it():
    """No checkpoint, but the run's streams hold a past (a learner that died before its first
    checkpoint): prompts whose groups were consumed are not counted as in flight for ever."""
    queue = MemoryReplayQueue()
    first = make_intake(queue)
    first.admit(version=0)
    put(queue, make_group("default-p0", [0, 0], [1.0, 0.0]), make_group("default-p1", [0, 0], [0.0, 1.0]))
    for entry in queue.lease(KEYS.prompts, StreamKeys.ACTORS, "a", 2):
        queue.ack(KEYS.prompts, StreamKeys.ACTORS, [entry.id])  # their groups were written
    first.trained_batch(first.collect(version=0))
    first.acknowledge()  # consumed by the first lineage, which then dies without a checkpoint
    second = make_intake(queue, epoch="second")
    assert (second.admission.admitted, second.admission.consumed) == (4, 2)
    assert second.admit(version=0) == 2
