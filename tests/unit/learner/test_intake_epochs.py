"""The learner's intake on a file source: the rows become prompts with their kind, reference and
metadata, admission stops when `task.source.epochs` run out, the last batch is what is left in
flight (partial), and the learner stops there instead of waiting for groups that never come; a
resumed intake continues the same (seeded) order. A bad row stops the intake when it is built."""

from __future__ import annotations

import json

import pytest

from relayrl.config import LearnerConfig, PublishConfig, RunConfig
from relayrl.learner.intake import Intake
from relayrl.learner.spec import resolve
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.tasks import DataError
from relayrl.wire import common_pb2
from tests.unit.learner.test_intake import make_group

KEYS = StreamKeys("default")


def config(path, batch: int = 2, epochs: int | None = 1) -> RunConfig:
    return RunConfig(task={"source": {"type": "file", "path": str(path), "epochs": epochs}},
                     learner=LearnerConfig(batch_groups=batch, max_staleness=1,
                                           weights=PublishConfig(wire_dtype="float32")))


def data(tmp_path, n: int = 5):
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": f"{i}+{i}=", "answer": str(2 * i), "id": f"r{i}"} for i in range(n - 1)]
    rows.append({"prompt": "2=", "tests": {"kind": "stdio", "cases": [{"stdout": "2"}], "prefix": "print(",
                                           "suffix": ")"}, "id": "code"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prompts(queue) -> list[common_pb2.Prompt]:
    return [common_pb2.Prompt.FromString(e.payload)
            for e in queue.lease(KEYS.prompts, StreamKeys.ACTORS, "a", count=100)]


def test_file_rows_are_admitted_with_kind_reference_and_metadata_until_the_epochs_end(tmp_path):
    queue = MemoryReplayQueue()
    cfg = config(data(tmp_path))
    intake = Intake(cfg, queue, resolve(cfg.learner.loss, 16), tokenizer=None)
    assert intake.admit(0) == 4  # (max_staleness + 1) * batch
    first = prompts(queue)
    for p in first:  # every group comes back scored
        queue.put(KEYS.groups, make_group(p.prompt_id, [0, 0], [1.0, 0.0]).SerializeToString())
    batch = intake.collect(0)
    intake.trained_batch(batch)
    assert len(batch) == 2 and not intake.exhausted
    batch = intake.collect(1)  # admits the fifth row, then finds none
    assert intake.exhausted and intake.admission.admitted == 5 and len(batch) == 2
    intake.trained_batch(batch)
    rest = prompts(queue)
    every = first + rest
    assert sorted(p.kind for p in every) == ["code", "math", "math", "math", "math"]
    by_id = {json.loads(p.metadata)["id"]: p for p in every}
    assert by_id["r3"].text == "3+3=" and by_id["r3"].reference == "6"
    assert json.loads(by_id["code"].reference)["prefix"] == "print("
    assert json.loads(by_id["r1"].metadata)["where"].endswith("rows.jsonl: row 2")
    queue.put(KEYS.groups, make_group(rest[0].prompt_id, [1, 1], [0.0, 1.0]).SerializeToString())
    last = intake.collect(2)
    assert len(last) == 1  # the last, partial batch: nothing else is in flight
    intake.trained_batch(last)
    assert intake.finished and intake.collect(3) == [] and intake.admit(3) == 0


def test_the_learner_stops_when_the_rows_run_out(tmp_path, tiny_model_dir):
    from relayrl.learner.trainer import Learner

    queue = MemoryReplayQueue()
    learner = Learner(config(data(tmp_path, n=3), batch=2), queue, str(tiny_model_dir), tmp_path / "out")
    learner.admit()
    for p in prompts(queue):
        queue.put(KEYS.groups, make_group(p.prompt_id, [0, 0], [1.0, 0.0]).SerializeToString())
    counters = learner.run(steps=100)
    assert learner.step == 2 and counters.groups_trained == 3  # a full batch, then the partial last one
    assert (tmp_path / "out" / "checkpoints" / "step-000002").is_dir()
    assert queue.pending(KEYS.groups, StreamKeys.LEARNER) == 0  # the last checkpoint acknowledged them


def test_a_resumed_intake_continues_the_seeded_order(tmp_path):
    path = data(tmp_path, n=8)
    queue = MemoryReplayQueue()
    cfg = config(path, epochs=None)
    spec = resolve(cfg.learner.loss, 16)
    Intake(cfg, queue, spec, tokenizer=None).admit(0)
    admitted = [p.text for p in prompts(queue)]
    again = MemoryReplayQueue()
    Intake(config(path, batch=8, epochs=None), again, spec, tokenizer=None).admit(0)  # room for 16: two epochs
    order = [p.text for p in prompts(again)]
    assert order[:4] == admitted  # the same seed, the same order
    assert sorted(order[:8]) == sorted(order[8:]) and order[:8] != order[8:]  # each epoch reshuffled
    # a new learner continues where Redis says: 4 admitted (leased, unfinished), room for 2 * 6 - 4
    Intake(config(path, batch=6, epochs=None), queue, spec, tokenizer=None).admit(0)
    assert [p.text for p in prompts(queue)] == order[4:12]


def test_a_bad_row_stops_the_intake_when_it_is_built(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2="}\n')
    cfg = config(path)
    with pytest.raises(DataError, match=r"bad\.jsonl: row 2: answer: missing"):
        Intake(cfg, MemoryReplayQueue(), resolve(cfg.learner.loss, 16), tokenizer=None)
