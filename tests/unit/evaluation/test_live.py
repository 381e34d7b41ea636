"""The evaluator that follows a run: which versions it evaluates (the initial policy, one per block
of every_steps versions, the last), that it evaluates the weights it pulled, and what it reports
through Redis. Real parts: the tiny model in the transformers engine, the math verifier, the
in-process weight store the learner publishes into, the in-memory queue."""

from __future__ import annotations

import json

import pytest
import torch

from relayrl.config import RunConfig
from relayrl.evaluation.live import LiveEvaluator
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights.source import InProcessWeightSource
from relayrl.weights.store import WeightStore

KEYS = StreamKeys("t")


@pytest.fixture
def setup(tiny_model_dir):
    cfg = RunConfig(run="t", eval={"every_steps": 5, "n": 3, "k": 2, "batch_prompts": 3},
                    rollout={"sampling": {"max_new_tokens": 4}}, learner={"steps": 12})
    queue, store = MemoryReplayQueue(), WeightStore(keep=2, epoch="e1")
    engine = TransformersEngine(str(tiny_model_dir))
    evaluator = LiveEvaluator(cfg, queue, InProcessWeightSource(store), engine)
    yield cfg, queue, store, engine, evaluator
    evaluator.close()


def reported(queue) -> list[dict]:
    return [json.loads(e.payload) for e in queue.lease(KEYS.eval, StreamKeys.LEARNER, "l", count=100)]


def publish(queue, store, engine, version: int, scale: float = 1.0) -> None:
    state = {k: v * scale for k, v in engine.model.state_dict().items()}
    store.publish(version, state, "float32")
    queue.set_value(KEYS.version, str(version))


def test_it_evaluates_the_start_each_block_of_versions_and_the_last(setup):
    cfg, queue, store, engine, evaluator = setup
    queue.ensure_group(KEYS.eval, StreamKeys.LEARNER)
    assert not evaluator.step()  # nothing announced yet
    publish(queue, store, engine, 0)
    assert evaluator.step()  # version 0, the weights it started with
    (baseline,) = reported(queue)
    assert baseline["version"] == 0 and baseline["epoch"] == "" and baseline["dataset"] == "task"
    assert baseline["n"] == 3 and baseline["k"] == 2
    assert set(baseline) >= {"pass@1", "cons@k", "format", "truncated", "infra_errors", "eval_s", "cpu_s", "time"}
    assert not evaluator.step()  # still version 0
    publish(queue, store, engine, 4)
    assert not evaluator.step()  # within the first block of 5
    publish(queue, store, engine, 7, scale=0.0)  # the learner moved on: the newest is evaluated
    assert evaluator.step()
    assert [(r["version"], r["epoch"]) for r in reported(queue)] == [(7, "e1")] and engine.version == 7
    assert all(torch.all(p == 0) for p in engine.model.parameters())  # it evaluated what it pulled
    publish(queue, store, engine, 9)
    assert not evaluator.step()  # 9 is in 7's block (5..9)
    publish(queue, store, engine, 11)
    assert evaluator.step() and evaluator.evaluated == 11
    publish(queue, store, engine, 12)
    assert evaluator.step() and evaluator.evaluated == 12  # the last version, out of turn
    assert [r["version"] for r in reported(queue)] == [11, 12]


def test_due_versions():
    class Cfg:
        class eval:
            every_steps = 50

    ev = LiveEvaluator.__new__(LiveEvaluator)
    ev.cfg, ev.final, ev.evaluated = Cfg, 300, None
    assert not ev.due(-1) and ev.due(0) and ev.due(137)  # the first one seen
    ev.evaluated = 50
    assert [v for v in (50, 51, 99, 100, 149, 300) if ev.due(v)] == [100, 149, 300]
    ev.evaluated = 300
    assert not ev.due(300)


def test_a_config_without_evaluation_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="eval.every_steps is 0"):
        LiveEvaluator(RunConfig(), MemoryReplayQueue(), InProcessWeightSource(WeightStore()), None)


def test_a_learner_that_went_back_is_followed_from_where_it_resumed(setup):
    cfg, queue, store, engine, evaluator = setup
    evaluator.evaluated = 12  # the lost lineage got to 12; the restarted learner resumed step 6
    publish(queue, store, engine, 6)
    assert not evaluator.step() and evaluator.evaluated == 6
    publish(queue, store, engine, 9)
    assert not evaluator.step()  # 9 is in 6's block (5..9)
    publish(queue, store, engine, 10)
    assert evaluator.step() and evaluator.evaluated == 10
