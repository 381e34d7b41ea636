"""`relayrl train --data FILE`: a bad data file or row is one line naming the file, the row and the
field, before any process of the run starts (exit status 2, nothing left in OUT but nothing run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relayrl.cli", "train", *args], capture_output=True, text=True,
                          timeout=120)


def test_a_bad_row_stops_relayrl_train_before_anything_starts(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2=", "answer": "4"}\n{"prompt": "3+3="}\n')
    out = tmp_path / "out"
    result = train(str(ROOT / "configs" / "quickstart.yaml"), "--data", str(data), "--out", str(out), "--quiet")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"data error: {data}: row 3: answer: missing"]
    assert not (out / "logs").exists()  # no process was started


def test_a_bad_row_in_the_configs_own_source_too(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "1+1=", "tests": {"inputs": ["1"]}}\n')
    config = tmp_path / "run.yaml"
    config.write_text(f"task:\n  source:\n    type: file\n    path: {data}\n")
    result = train(str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"data error: {data}: row 1: tests: inputs and outputs must be non-empty lists "
                                     "of the same length")
