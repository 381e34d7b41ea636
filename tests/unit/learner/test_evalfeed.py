"""The learner's intake of evaluation results: each (version, dataset) once in eval.jsonl however
often it is delivered, acknowledged, exported to Prometheus (a late, older result does not
overwrite a newer one), and a final wait only when an evaluator has reported."""

from __future__ import annotations

import json
import threading
import time

from prometheus_client import REGISTRY

from relayrl.learner import dynamics
from relayrl.learner.evalfeed import EvalFeed
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys

KEYS = StreamKeys("t")


def result(version: int, dataset: str = "task", p: float = 0.5) -> dict:
    return {"version": version, "dataset": dataset, "pass@1": p, "cons@k": p / 2, "format": 1.0, "n": 4, "k": 2}


def put(queue, *records) -> None:
    for r in records:
        queue.put(KEYS.eval, json.dumps(r).encode())


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def gauge(name: str, dataset: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"dataset": dataset})


def test_each_result_lands_once_and_is_acknowledged(tmp_path):
    queue = MemoryReplayQueue()
    feed = EvalFeed(queue, "t", tmp_path)
    assert feed.poll() == [] and not feed.reported
    put(queue, result(0, p=0.1), result(10, p=0.3), result(10, p=0.3))  # the last one: a repeated delivery
    assert [r["version"] for r in feed.poll()] == [0, 10]
    assert feed.reported and queue.pending(KEYS.eval, StreamKeys.LEARNER) == 0
    assert [r["version"] for r in lines(tmp_path / "eval.jsonl")] == [0, 10]
    assert gauge("relayrl_eval_pass_at_1", "task") == 0.3 and gauge("relayrl_eval_version", "task") == 10
    put(queue, result(5, p=0.9))  # late and older: in the file, not over the newer gauge
    assert [r["version"] for r in feed.poll()] == [5]
    assert gauge("relayrl_eval_pass_at_1", "task") == 0.3
    feed.close()


def test_a_restarted_learner_takes_back_what_it_leased_and_skips_what_it_wrote(tmp_path):
    queue = MemoryReplayQueue()
    feed = EvalFeed(queue, "t", tmp_path)
    put(queue, result(0))
    feed.poll()
    feed.close()
    # the next learner incarnation leased two results and died before writing or acknowledging them
    put(queue, result(0), result(20, dataset="gsm8k"))
    queue.lease(KEYS.eval, StreamKeys.LEARNER, "learner-0", count=10)
    again = EvalFeed(queue, "t", tmp_path)
    assert [(r["version"], r["dataset"]) for r in again.poll()] == [(20, "gsm8k")]
    assert [(r["version"], r["dataset"]) for r in lines(tmp_path / "eval.jsonl")] == [(0, "task"), (20, "gsm8k")]
    assert queue.pending(KEYS.eval, StreamKeys.LEARNER) == 0
    again.close()


def test_the_final_wait_waits_only_for_an_evaluator_that_reported(tmp_path):
    queue = MemoryReplayQueue()
    feed = EvalFeed(queue, "t", tmp_path)
    t0 = time.monotonic()
    assert feed.wait_for(30, timeout_s=5) == [] and time.monotonic() - t0 < 0.5  # no evaluator in this run
    put(queue, result(20))
    feed.poll()
    threading.Timer(0.3, put, (queue, result(30))).start()
    assert [r["version"] for r in feed.wait_for(30, timeout_s=10, poll_s=0.05)] == [30]
    t0 = time.monotonic()
    assert feed.wait_for(40, timeout_s=0.3, poll_s=0.05) == []  # it never comes: the wait ends
    assert 0.3 <= time.monotonic() - t0 < 2
    feed.close()


def test_step_dynamics_are_exported_as_gauges_and_absent_figures_left_unset():
    dynamics.observe_step({"loss": -0.25, "entropy": 1.5, "clip_frac": 0.1, "clip_frac_low": 0.04,
                           "clip_frac_high": 0.06, "grad_norm": 0.7, "mismatch_kl": 1e-4, "ess": 0.99,
                           "reward_mean": 0.5, "reward_accuracy_mean": 0.75, "reward_format_mean": 0.25})
    value = REGISTRY.get_sample_value
    assert value("relayrl_learner_loss") == -0.25 and value("relayrl_learner_entropy") == 1.5
    assert value("relayrl_learner_clip_fraction", {"side": "high"}) == 0.06
    assert value("relayrl_learner_grad_norm") == 0.7 and value("relayrl_learner_ess") == 0.99
    assert value("relayrl_learner_reward_component", {"component": "accuracy"}) == 0.75
    assert value("relayrl_learner_reward_component", {"component": "format"}) == 0.25
    assert value("relayrl_learner_reward_component", {"component": "mean"}) is None


def test_a_restart_keeps_the_evaluations_of_its_lineage_only(tmp_path):
    """The learner resumed step 10 as epoch B: evaluations of versions past 10 by the lost lineage A
    go (from the file and from the stream); those up to 10 are history both lineages share."""
    queue = MemoryReplayQueue()
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps({**result(v), "epoch": "A"}) + "\n" for v in (0, 10, 20)))
    feed = EvalFeed(queue, "t", tmp_path, epoch="B", resumed_step=10)
    assert [r["version"] for r in lines(tmp_path / "eval.jsonl")] == [0, 10]
    put(queue, {**result(5), "epoch": "A"}, {**result(30), "epoch": "A"}, {**result(20), "epoch": "B"},
        {**result(0), "epoch": ""})
    assert [(r["version"], r["epoch"]) for r in feed.poll()] == [(5, "A"), (20, "B")]
    assert queue.pending(KEYS.eval, StreamKeys.LEARNER) == 0  # the lost lineage's result is acknowledged too
    assert [r["version"] for r in lines(tmp_path / "eval.jsonl")] == [0, 10, 5, 20]
    feed.close()
