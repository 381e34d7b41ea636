"""The learner's run log: a resumed run's metrics.jsonl is cut back to the step it resumed from,
the ledger keeps every step ever trained, and the status file is written when the run ends."""

import json

from relayrl.learner.runlog import RunLog


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_resumed_run_log_forgets_the_undone_steps_but_the_ledger_keeps_them(tmp_path):
    log = RunLog(tmp_path)
    for step in (1, 2, 3):
        log.trained(step, [f"g{step}"])
        record = log.step(step, step, 1, wait_s=0.123456, train_s=1.0, wall_s=step * 1.23456, stats={"loss": 0.5})
    assert record == {"step": 3, "version": 3, "groups": 1, "wait_s": 0.1235, "train_s": 1.0, "wall_s": 3.704,
                      "loss": 0.5}
    log.close({"step": 3})  # (a killed learner closes nothing; the files are flushed after each line)
    # the newest checkpoint is step 1: the resumed run trains steps 2 and 3 again
    resumed = RunLog(tmp_path, resumed_step=1)
    assert [r["step"] for r in lines(tmp_path / "metrics.jsonl")] == [1]
    resumed.trained(2, ["g2"])
    resumed.step(2, 2, 1, 0.0, 1.0, 1.0, {})
    resumed.close({"step": 2})
    assert [r["step"] for r in lines(tmp_path / "metrics.jsonl")] == [1, 2]
    assert [r["step"] for r in lines(tmp_path / "ledger.jsonl")] == [1, 2, 3, 2]
    assert json.loads((tmp_path / "learner-status.json").read_text()) == {"step": 2}


def test_a_fresh_run_log_appends_and_a_resume_without_metrics_is_fine(tmp_path):
    RunLog(tmp_path / "new", resumed_step=4).close({})
    assert (tmp_path / "new" / "metrics.jsonl").read_text() == ""


def scored_group(gid: str, text: str, reward: float, versions=(3, 3)):
    from relayrl.wire import common_pb2

    samples = [common_pb2.Sample(sample_id=f"{gid}/{i}", completion_token_ids=[10] * (i + 2), versions=list(versions),
                                 text=text) for i in range(2)]
    scores = [common_pb2.Score(outcome=common_pb2.OUTCOME_PASS, reward=reward, components={"accuracy": reward,
                                                                                             "format": 0.0})] * 2
    return common_pb2.Group(group_id=gid, prompt=common_pb2.Prompt(prompt_id=gid, text=f"prompt {gid}"),
                            samples=samples, scores=scores)


def test_every_step_reaches_the_trackers_with_samples_and_evaluations(tmp_path):
    import pytest

    from relayrl.learner.evalfeed import EvalFeed
    from relayrl.replay import MemoryReplayQueue
    from relayrl.replay.keys import StreamKeys
    from relayrl.tracking import Trackers
    from relayrl.tracking.backends import TensorBoardTracker
    from tests.tracker_readers import read_tensorboard

    queue = MemoryReplayQueue()
    log = RunLog(tmp_path, trackers=Trackers([TensorBoardTracker(tmp_path / "tb")]), config={"run": "t"},
                 evals=EvalFeed(queue, "t", tmp_path), samples_every=2, samples_per_step=1)
    batch = [scored_group("a", "<answer>7</answer>", 1.0), scored_group("b", "x", 0.0)]
    stats = {"reward_mean": 0.5, "reward_accuracy_mean": 0.5, "kl": 0.02, "tokens": 10, "dropped_stale": 1,
             "staleness_counts": {"0": 1, "1": 1}, "staleness_max": 1}
    for step in (1, 2, 3):
        if step == 3:
            queue.put(StreamKeys("t").eval, json.dumps({"version": 2, "dataset": "task", "pass@1": 0.25,
                                                        "cons@k": 0.5, "format": 0.0}).encode())
        record = log.step(step, step, 2, 0.5, 0.5, float(step), stats, batch)
    assert record["tokens_per_s"] == 10.0
    log.close({"step": 3})
    got = read_tensorboard(tmp_path / "tb")
    assert [s for s, _ in got["scalars"]["reward/mean"]] == [1, 2, 3]
    assert got["scalars"]["reward/accuracy"][0][1] == 0.5 and got["scalars"]["kl/ref"][0][1] == pytest.approx(0.02)
    assert got["scalars"]["drops/stale"][0][1] == 1 and got["scalars"]["throughput/tokens_per_s"][0][1] == 10
    assert got["histograms"]["length/distribution"] == [1, 2, 3]
    assert got["histograms"]["staleness/distribution"] == [1, 2, 3]
    assert got["scalars"]["eval/task/pass_at_1"] == [(2, 0.25)]
    assert [s for s, _ in got["text"]["samples"]] == [1, 2]  # step 1 and every 2 steps
    assert "prompt a" in got["text"]["samples"][0][1] and "<answer>7</answer>" in got["text"]["samples"][0][1]
    samples = lines(tmp_path / "samples.jsonl")
    assert [(s["step"], s["prompt"], s["completion"], s["reward"], s["accuracy"], s["version"]) for s in samples] == [
        (1, "prompt a", "<answer>7</answer>", 1.0, 1.0, 3), (2, "prompt a", "<answer>7</answer>", 1.0, 1.0, 3)]
    assert [r["version"] for r in lines(tmp_path / "eval.jsonl")] == [2]


def test_record_keys_are_grouped_for_the_trackers():
    from relayrl.learner.runlog import tracker_name

    assert {k: tracker_name(k) for k in ("reward_mean", "reward_format_mean", "response_length_mean", "clip_frac",
                                         "clip_frac_high", "kl", "mismatch_kl_k1", "ess", "dropped_zero_variance",
                                         "weight_sync_s", "grad_norm", "something_new")} == {
        "reward_mean": "reward/mean", "reward_format_mean": "reward/format", "response_length_mean": "length/mean",
        "clip_frac": "clip/total", "clip_frac_high": "clip/high", "kl": "kl/ref", "mismatch_kl_k1": "kl/mismatch_k1",
        "ess": "offpolicy/ess", "dropped_zero_variance": "drops/zero_variance", "weight_sync_s": "time/weight_sync_s",
        "grad_norm": "policy/grad_norm", "something_new": "train/something_new"}
