"""Restart is resume, as a person does it: the learner of a run is killed (kill -9), and the same
`relayrl train` command, with no flag, is run again. It continues the run from the newest
checkpoint as a new learner epoch, and the ledger of the run is clean: every admitted prompt
trained once, dropped with a reason, or still on its way; none lost, none trained twice
(`relayrl.ledger.account`). The groups the dead lineage generated are dropped as `epoch`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from relayrl.learner.checkpoint import latest, read_state
from relayrl.ledger import account
from tests.integration.test_resume import kill_the_learner_mid_run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_kill_the_learner_and_run_the_same_command_again(tmp_path, redis_url):
    data = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    data["run"] = "restarted"
    data["queue"].update(url=redis_url, lease_idle_s=2)  # the run's Redis outlives the launcher: the ledger reads it
    data["learner"].update(batch_groups=8, checkpoint={"every": 4}, steps=16)
    config, out = tmp_path / "run.yaml", tmp_path / "out"
    config.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "relayrl.cli", "train", str(config), "--out", str(out), "--quiet"]

    kill_the_learner_mid_run(command, out)
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
