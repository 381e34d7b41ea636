"""Checkpoint and resume against a real Redis: a learner that dies after an uncheckpointed step
resumes to exactly the weights of an uninterrupted run, with every group trained once."""

import json
import random

import pytest
import torch

from relayrl.config import CheckpointConfig, LearnerConfig, LossConfig, OptimConfig, PublishConfig, RunConfig
from relayrl.learner.checkpoint import latest, read_state
from relayrl.learner.trainer import Learner
from relayrl.replay import RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.wire import common_pb2


def groups(n: int, seed: int = 0) -> list[common_pb2.Group]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        samples, scores = [], []
        for i in range(4):
            completion = [rng.randrange(3, 15) for _ in range(rng.randrange(1, 4))] + [2]
            samples.append(common_pb2.Sample(sample_id=f"g{k}/{i}", prompt_token_ids=[1, 9, 12, 20],
                                             completion_token_ids=completion,
                                             logprobs=[-2.5] * len(completion), versions=[0] * len(completion)))
            scores.append(common_pb2.Score(outcome=common_pb2.OUTCOME_PASS, reward=float(rng.random() < 0.5)))
        out.append(common_pb2.Group(group_id=f"g{k}", samples=samples, scores=scores))
    return out


def make(tiny_model_dir, out, redis_url, run):
    cfg = RunConfig(run=run, learner=LearnerConfig(
        batch_groups=2, max_staleness=100, checkpoint=CheckpointConfig(every=1),
        weights=PublishConfig(wire_dtype="float32"), optim=OptimConfig(lr_warmup_steps=3), loss=LossConfig(kl_beta=0.05)))
    return Learner(cfg, RedisReplayQueue(redis_url), str(tiny_model_dir), out)  # restart is resume: no flag


def feed(learner, items):
    for g in items:
        learner.queue.put(learner.keys.groups, g.SerializeToString())


def test_resume_after_an_uncheckpointed_step_equals_an_uninterrupted_run(tiny_model_dir, tmp_path, redis_url):
    data = groups(6)
    ref = make(tiny_model_dir, tmp_path / "ref", redis_url, "ref")
    feed(ref, data)
    ref.run(steps=3)

    first = make(tiny_model_dir, tmp_path / "crash", redis_url, "crash")
    feed(first, data)
    first.run(steps=1)  # checkpoint at step 1, groups g0 g1 acknowledged
    batch = first.collect()  # step 2 trained but never checkpointed: the process "dies" here
    first.train_step([g for _, g in batch])
    keys = StreamKeys("crash")
    assert first.queue.pending(keys.groups, StreamKeys.LEARNER) == 2
    admitted = first.admission.admitted
    first.queue.close()

    second = make(tiny_model_dir, tmp_path / "crash", redis_url, "crash")
    assert (second.step, second.version, second.intake.trained) == (1, 1, ["g0", "g1"])
    assert second.admission.admitted == admitted  # read back from the prompts stream
    assert [common_pb2.Group.FromString(e.payload).group_id for e in second.intake.redeliver] == ["g2", "g3"]
    second.run(steps=3)
    for name, tensor in ref.policy.model.state_dict().items():
        assert torch.equal(tensor, second.policy.model.state_dict()[name]), name
    assert second.policy.scheduler.get_last_lr() == ref.policy.scheduler.get_last_lr()
    state = read_state(latest(tmp_path / "crash" / "checkpoints"))
    assert state["trained"] == [f"g{k}" for k in range(6)] and state["step"] == 3
    assert second.queue.pending(keys.groups, StreamKeys.LEARNER) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_a_group_acknowledged_late_is_not_trained_twice(tiny_model_dir, tmp_path, redis_url):
    """Checkpoint durable, crash before the acknowledgement: the redelivered groups are duplicates."""
    data = groups(4, seed=1)
    first = make(tiny_model_dir, tmp_path / "late", redis_url, "late")
    feed(first, data)
    batch = first.collect()
    first.train_step([g for _, g in batch])
    first.step = first.version = 1
    first.intake.trained_batch(batch)
    first.intake.to_ack = []  # the acknowledgement never happens
    first.checkpoint()
    second = make(tiny_model_dir, tmp_path / "late", redis_url, "late")
    second.run(steps=2)
    state = read_state(latest(tmp_path / "late" / "checkpoints"))
    assert state["trained"] == ["g0", "g1", "g2", "g3"]
    assert second.counters.groups_dropped["duplicate"] == 2


def test_resume_without_a_checkpoint_starts_from_the_initial_model(tiny_model_dir, tmp_path, redis_url):
    learner = make(tiny_model_dir, tmp_path / "none", redis_url, "none")
    assert learner.step == 0 and learner.intake.trained == []


# -- kill -9 across real processes -------------------------------------------------------------------
def _id(entry_id) -> tuple[int, int]:
    ms, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")
    return int(ms), int(seq)


def _unfinished(client, stream: str, group: str) -> set[str]:
    """Entry ids of `stream` that `group` has not acknowledged: pending or never delivered."""
    info = {g["name"].decode(): g for g in client.xinfo_groups(stream)}[group]
    last = _id(info["last-delivered-id"])
    pending = {_id(p["message_id"]) for p in client.xpending_range(stream, group, "-", "+", 1_000_000)}
    return {eid for eid, _ in client.xrange(stream) if _id(eid) in pending or _id(eid) > last}


def _learner_pid(out) -> int:
    import os
    from pathlib import Path

    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"learner" in cmd and str(out).encode() in cmd and b"serve" in cmd:
            return int(pid)
    raise LookupError("no learner process")


def kill_the_learner_mid_run(cli: list[str], out, steps: int = 6) -> None:
    """Run the launcher command `cli` until its learner has logged `steps` steps, then kill -9 the
    learner; the launcher sees it die, stops the rest and exits 1."""
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= steps):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    os.kill(_learner_pid(out), signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode == 1  # the launcher saw its learner die and stopped the rest


@pytest.mark.slow
def test_kill_9_the_learner_mid_run_and_resume_loses_no_group_and_trains_none_twice(tmp_path, redis_url):
    import subprocess
    import sys
    from pathlib import Path

    import redis
    import yaml

    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "configs" / "quickstart.yaml").read_text())
    data["run"] = "killed"
    data["queue"].update(url=redis_url, lease_idle_s=2)
    data["learner"].update(batch_groups=8, checkpoint={"every": 4}, steps=20)
    config, out = tmp_path / "run.yaml", tmp_path / "out"
    config.write_text(yaml.safe_dump(data))
    cli = [sys.executable, "-m", "relayrl.cli", "train", str(config), "--out", str(out), "--quiet"]

    kill_the_learner_mid_run(cli, out)
    metrics = out / "metrics.jsonl"

    client = redis.Redis.from_url(redis_url)
    keys = StreamKeys("killed")
    steps_before = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    at = read_state(latest(out / "checkpoints"))["step"]
    assert max(steps_before) > at  # steps were trained that no checkpoint holds: the crash undoes them
    lost = [g for line in (out / "ledger.jsonl").read_text().splitlines()
            for g in json.loads(line)["trained"] if json.loads(line)["step"] > at]
    assert lost and _unfinished(client, keys.groups, StreamKeys.LEARNER)

    resumed = subprocess.run([*cli, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["groups_trained"] == 160

    state = read_state(latest(out / "checkpoints"))
    trained, dropped = state["trained"], state["dropped"]
    assert state["step"] == 20 and len(trained) == 160
    assert len(set(trained)) == len(trained), "a group was trained twice"
    assert not set(trained) & set(dropped)
    assert set(lost) <= set(trained) | set(dropped)  # the undone steps' groups were trained again
    # every prompt ever admitted is trained, dropped with a reason, or still on its way
    def payloads(stream, group):
        unfinished = _unfinished(client, stream, group)
        return [(next(iter(f.values())), eid in unfinished) for eid, f in client.xrange(stream)]

    # prompt ids are numbered in admission order; the stream is trimmed of what actors finished
    admitted = {f"killed-p{k}" for k in range(json.loads((out / "learner-status.json").read_text())["prompts_admitted"])}
    prompts = [(common_pb2.Prompt.FromString(p).prompt_id, w) for p, w in payloads(keys.prompts, StreamKeys.ACTORS)]
    assert {pid for pid, _ in prompts} <= admitted  # no prompt id was admitted twice or out of order
    assert len(prompts) == len({pid for pid, _ in prompts})
    waiting_prompts = {pid for pid, waiting in prompts if waiting}
    waiting_groups = {common_pb2.Group.FromString(p).group_id for p, w in payloads(keys.groups, StreamKeys.LEARNER) if w}
    missing = admitted - set(trained) - set(dropped) - waiting_prompts - waiting_groups
    assert not missing, f"lost: {sorted(missing)[:10]}"
    assert set(trained) <= admitted
    client.close()
