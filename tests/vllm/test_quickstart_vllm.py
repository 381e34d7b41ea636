"""The quickstart trains with the vLLM engine: `relayrl train configs/quickstart-vllm.yaml`.

Every service its own process on loopback (a private Redis, the reward service, the learner and a
vLLM actor on the CPU backend), exactly as a user runs it; the policy must learn the task.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_learns_with_the_vllm_engine(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(ROOT / "configs/quickstart-vllm.yaml"),
                           "--steps", "150", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 150
    assert summary["reward_last"] > summary["reward_first"] + 0.2, summary
    assert summary["max_staleness_trained"] <= 1
    actor_log = (out / "logs" / "actor-0.log").read_text()
    assert "vllm" in actor_log.lower() and "loaded version" in actor_log  # the vLLM engine followed versions
