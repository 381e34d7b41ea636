"""`relayrl status` and `relayrl report` through the CLI on run directories whose processes are gone
(the live run is tests/e2e/test_watch_run.py): the screen from the files alone, the last error
lines of the logs, and one line for a directory that is not a run."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.unit.report.test_report import fake_run


def relayrl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relayrl.cli", *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"})


def test_status_of_a_finished_run_from_its_files(tmp_path):
    run = fake_run(tmp_path / "grpo", steps=40)
    (run / "summary.json").write_text(json.dumps({"steps": 40, "reward_first": 0.03, "reward_last": 0.71}))
    (run / "logs").mkdir()
    (run / "logs" / "actor-0.log").write_text("2026 relayrl.actor INFO loaded version 3\n"
                                              "2026 relayrl.actor WARNING actor-0: Redis away; retrying\n")
    result = relayrl("status", str(run))
    assert result.returncode == 0, result.stderr
    screen = result.stdout
    assert "finished" in screen and "grpo" in screen and "task pass@1 0.400 (v40)" in screen
    assert "reward_last" in screen and "no errors in the logs" in screen
    assert "Queues" not in screen  # nothing live to ask


def test_status_of_a_crashed_run_shows_the_last_errors(tmp_path):
    run = fake_run(tmp_path / "crashed", steps=5, evals=False)
    (run / "learner-status.json").unlink()  # the learner died: it never wrote its final status
    (run / "endpoints.json").write_text(json.dumps({
        "run": "crashed", "redis": "redis://127.0.0.1:9/0", "steps": 300,  # nothing listens on port 9
        "services": {"learner": {"grpc": "127.0.0.1:9"}, "reward": {"grpc": "127.0.0.1:9"}}}))
    (run / "logs").mkdir()
    (run / "logs" / "learner.log").write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                                              "ValueError: weights do not fit the model [bold]\n")
    result = relayrl("status", str(run), "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    screen = result.stdout
    assert "not running" in screen and "5 / 300" in screen
    assert "ValueError: weights do not fit the model [bold]" in screen  # a log line is text, not rich markup
    assert "Redis not reachable" in screen


def test_report_through_the_cli_and_its_one_line_errors(tmp_path):
    a, b = fake_run(tmp_path / "grpo"), fake_run(tmp_path / "dapo", algorithm="dapo")
    result = relayrl("report", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {tmp_path / 'cmp' / 'index.html'}"
    single = relayrl("report", str(a))
    assert single.returncode == 0 and (a / "report" / "index.html").exists()
    (tmp_path / "empty").mkdir()
    bad = relayrl("report", str(tmp_path / "empty"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"report: {tmp_path / 'empty'}: no metrics.jsonl records (not a relayrl run directory, or no step trained yet)"]
