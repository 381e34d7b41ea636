"""End to end: one dataset of math, code and SWE rows (configs/mixed-mini.yaml's, plus a
SWE-bench-style instance converted when the run starts) through `relayrl train` and the real
services: every group is scored by its own kind's verifier (math-verify; the code sandbox; the SWE
verifier on the slow lane), no sample is an infrastructure error, and the run ends cleanly.

The run's Redis is the test's, with an extra consumer group that never reads the scored-groups
stream, so the learner's trimming keeps every group for the test to inspect afterwards.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from relayrl.wire import common_pb2
from tests.integration.test_task_rows_scored import _instance_dir

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")]

# a key each verifier writes in a score's details, and keys only the other verifiers write: the math
# verifier also writes "cached" (on a remembered math-verify verdict), so it is not code's alone
SIGNS = {"math": "answer", "code": "cached", "swe": "instance_id"}
FOREIGN = {"math": {"cases", "duration_s", "instance_id"}, "code": {"answer", "instance_id"},
           "swe": {"answer", "cached", "cases"}}


def mixed_rows(tmp_path: Path) -> Path:
    """The shipped mixed rows (task directories made absolute) and a SWE-bench-style instance."""
    data, instance = _instance_dir(tmp_path)
    lines = []
    for line in (ROOT / "examples" / "mixed-mini" / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "task" in row:
            row["task"] = str((ROOT / "examples" / "mixed-mini" / row["task"]).resolve())
        lines.append(json.dumps(row))
    lines.append(json.dumps(instance))
    (data / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    return data / "mixed.jsonl"


def test_a_mixed_math_code_swe_dataset_trains_through_the_real_services(tmp_path, redis_url):
    data = yaml.safe_load((ROOT / "configs" / "mixed-mini.yaml").read_text())
    run = "mixed-e2e"
    data["run"] = run
    data["queue"]["url"] = redis_url
    data["task"]["source"]["path"] = str(mixed_rows(tmp_path))
    data["learner"]["steps"] = 8
    config, out = tmp_path / "mixed.yaml", tmp_path / "out"
    config.write_text(yaml.safe_dump(data))
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(f"relayrl:{run}:groups", "observer", id="0", mkstream=True)
    result = subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(config), "--out", str(out), "--quiet"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8
    groups = [common_pb2.Group.FromString(fields[b"d"]) for _, fields in client.xrange(f"relayrl:{run}:groups")]
    trained = {gid for line in (out / "ledger.jsonl").read_text().splitlines() for gid in json.loads(line)["trained"]}
    assert trained <= {g.group_id for g in groups} and len(trained) == 8 * 4
    kinds = {g.prompt.kind for g in groups}
    assert kinds == {"math", "code", "swe"}, kinds
    for g in groups:
        assert len(g.scores) == len(g.samples) == 4
        for score in g.scores:
            details = json.loads(score.details)
            assert score.outcome in (common_pb2.OUTCOME_PASS, common_pb2.OUTCOME_FAIL), (g.prompt.kind, details)
            assert SIGNS[g.prompt.kind] in details, (g.prompt.kind, details)
            assert not FOREIGN[g.prompt.kind] & set(details), (g.prompt.kind, details)
    instance_ids = {json.loads(s.details)["instance_id"] for g in groups if g.prompt.kind == "swe" for s in g.scores}
    assert "roman-1" in instance_ids  # the converted instance was drawn (9 rows, 32 groups trained)
    client.close()
