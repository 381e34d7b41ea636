"""The chaos test, short: services killed with SIGKILL at random moments, none of the work lost.

Runs benchmarks/chaos.py (the long version is the same script with more steps): actors, the
reward service, the learner (restarted with the same command: restart is resume) and Redis (restarted from its AOF) are
killed and restarted while the quickstart trains; the ledger must account for every prompt.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_random_kills_lose_nothing_and_train_nothing_twice(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--steps", "30",
                             "--kills", "6", "--seed", "3", "--out", str(tmp_path / "chaos")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print("chaos:", json.dumps(report))
    assert report["kills"] == 6  # at six random learner steps, however fast this machine trains
    assert set(report["kills_by_target"]) == {"actor-0", "actor-1", "reward", "learner", "redis"}
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    assert report["groups_trained"] == 30 * 16
