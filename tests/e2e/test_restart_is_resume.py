"""Restart is resume, as a person does it: the learner of a run is killed (kill -9), and the same
`relayrl train` command, with no flag, is run again. It continues the run from the newest
checkpoint as a new learner epoch, and the ledger of the run is clean: every admitted prompt
trained once, dropped with a reason, or still on its way; none lost, none trained twice
(`relayrl.ledger.account`). The groups the dead lineage generated are dropped as `epoch`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from relayrl.learner.checkpoint import latest, read_state
from relayrl.ledger import account

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def learner_pid(out: Path) -> int:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and b"learner" in cmd and str(out).encode() in cmd:
            return int(pid)
    raise LookupError("no learner process")


def test_kill_the_learner_and_run_the_same_command_again(tmp_path, redis_url):
    data = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    data["run"] = "restarted"
    data["queue"].update(url=redis_url, lease_idle_s=2)  # the run's Redis outlives the launcher: the ledger reads it
    data["learner"].update(batch_groups=8, checkpoint={"every": 4}, steps=16)
    config, out = tmp_path / "run.yaml", tmp_path / "out"
    config.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "relayrl.cli", "train", str(config), "--out", str(out), "--quiet"]

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 6):
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
        time.sleep(0.05)
    os.kill(learner_pid(out), signal.SIGKILL)
    first.communicate(timeout=120)
    assert first.returncode == 1  # the launcher saw its learner die and stopped the rest
    at = read_state(latest(out / "checkpoints"))["step"]
    assert 4 <= at < 16

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)  # the same command, no flag
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "continuing the run in" in again.stderr
    summary = json.loads(again.stdout)
    assert summary["steps"] == 16 and summary["groups_trained"] == 16 * 8

    ledger = account(redis_url, "restarted", out)
    assert ledger.duplicated == [] and ledger.lost("restarted") == [], ledger.summary("restarted")
    assert len(ledger.trained) == 16 * 8
    status = json.loads((out / "learner-status.json").read_text())
    assert status["groups_dropped"]["epoch"] >= 1  # the dead lineage's groups were not trained as on-policy
