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
