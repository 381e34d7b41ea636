"""`benchmarks/gpu.sh --dry-run`: the GPU benchmark's Python entrypoints on this CPU with tiny
settings — the learner under FSDP2 (gloo, one rank) in bf16, the actor pulling over the gloo pair
groups of the NCCL path, held-out evaluation before and after — and its one JSON line."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_dry_run_trains_syncs_and_reports(tmp_path):
    out = tmp_path / "gpu"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(out), "--steps", "3"],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == 3 and report["heldout_n"] == 200
    assert report["learner_tokens_per_s"] > 0 and report["rollout_tokens_per_s"] > 0
    assert report["weight_syncs"] >= 1 and report["weight_sync_s_per_version"] > 0  # over the pair groups
    assert 0 < report["learner_peak_rss_gb"] < 24
    for key in ("heldout_pass1_before", "heldout_pass1_after"):
        assert 0 <= report[key] <= 1
    logs = out / "run" / "logs"
    assert "nccl weights (gloo)" in (logs / "learner.log").read_text()
    assert (out / "run" / "checkpoints" / "step-000003" / "state").is_dir()  # the sharded checkpoint
