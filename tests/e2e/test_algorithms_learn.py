"""Each algorithm learns the quickstart task, through the real launcher (every service its own
process).

The quickstart's bar: over its 300 steps, the mean reward of the last 10% of steps exceeds the first
10%'s by 0.3. DAPO runs with its defaults (clip-higher, dynamic sampling, overlong shaping); GRPO
itself is the quickstart (tests/e2e/test_quickstart.py). The KL weight is per algorithm: 0.1 (the
quickstart's) for the std-normalised advantages of GRPO and DAPO, 0.01 for Dr.GRPO's and RLOO's
unnormalised ones, which a beta of 0.1 outweighs (measured: Dr.GRPO 0.02 -> 0.06 in 80 steps with
it). Measured on 2 cores (benchmarks in docs): Dr.GRPO 0.03 -> 0.54, RLOO 0.04 -> 0.73, DAPO 0.05 ->
0.80 (DAPO's runs spread wide: 0.29-0.81 at the end, one of twenty measured runs below the bar, the
round's starting tree 0.46-0.81 in eight; docs/benchmarks.md). GRPO with the decoupled objective and
truncated IS learns more slowly here (0.03 -> 0.31 in 300 steps at staleness 1 and 2) and is
therefore not held to this bar; see docs/benchmarks.md.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STEPS = 300  # the quickstart's length

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("loss", [
    {"algorithm": "dr_grpo", "kl_beta": 0.01},
    {"algorithm": "dapo", "kl_beta": 0.1},
    {"algorithm": "rloo", "kl_beta": 0.01},
], ids=["dr_grpo", "dapo", "rloo"])
def test_algorithm_learns_the_quickstart(tmp_path, loss):
    data = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    data["learner"]["loss"].update(loss)
    config, out = tmp_path / "run.yaml", tmp_path / "out"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(config), "--out", str(out),
                             "--steps", str(STEPS), "--quiet"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(loss, json.dumps(summary))
    assert summary["steps"] == STEPS
    assert summary["reward_last"] - summary["reward_first"] >= 0.3
    for key in ("entropy", "clip_frac", "response_length_mean", "mismatch_kl", "ess"):
        assert all(key in r for r in records), key
    status = json.loads((out / "learner-status.json").read_text())
    assert status["algorithm"] == loss["algorithm"]
    if loss["algorithm"] == "dapo":
        assert status["groups_dropped"]["zero_variance"] > 0  # dynamic sampling skipped some groups
