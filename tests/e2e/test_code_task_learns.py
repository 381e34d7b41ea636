"""End to end: the tiny model learns the shipped code task (configs/code-print.yaml) by GRPO alone,
through the real launcher (every service its own process), every reward a program run in the
bubblewrap sandbox by the code verifier.

The bar is the quickstart's: the mean reward of the last 10% of steps exceeds the first 10%'s
by 0.3. Measured on 2 busy cores (`relayrl train configs/code-print.yaml` with model and task
seeds 0, 1, 2): see the report in docs/benchmarks.md ("A code task").
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")]


def train_code_print(tmp_path: Path, seed: int) -> tuple[dict, Path]:
    data = yaml.safe_load((ROOT / "configs" / "code-print.yaml").read_text())
    data["model"]["tiny"]["seed"] = data["task"]["seed"] = seed
    config, out = tmp_path / "code-print.yaml", tmp_path / "out"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(config), "--out", str(out), "--quiet"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text()), out


def test_the_tiny_model_learns_the_code_task_with_the_sandbox_in_the_loop(tmp_path):
    summary, out = train_code_print(tmp_path, seed=0)
    print("code-print summary:", json.dumps(summary))
    assert summary["steps"] == 100
    assert summary["reward_last"] - summary["reward_first"] >= 0.3
    reward_log = (out / "logs" / "reward.log").read_text()
    assert "verifier code: {'mode': 'bwrap'" in reward_log  # the real sandbox, not the weak mode
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["reward_mean"] > 0.5
