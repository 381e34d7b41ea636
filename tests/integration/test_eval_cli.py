"""`relayrl eval` through the CLI on the tiny model: figures in range, the samples file agrees."""

from __future__ import annotations

import json
import math
import subprocess
import sys


def test_eval_of_the_tiny_model_prints_figures_in_range(tiny_model_dir, tmp_path):
    samples = tmp_path / "samples.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "relayrl.cli", "eval", str(tiny_model_dir), "-d", "task:most_frequent_digit",
         "-d", "task:add_digits", "--n", "5", "--k", "4", "--max-new-tokens", "6", "--samples", str(samples)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (report["k"], report["temperature"], report["top_p"]) == (4, 0.6, 0.95)
    assert set(report["datasets"]) == {"task:most_frequent_digit", "task:add_digits"}
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 2 * 5 * 4
    for name, figures in report["datasets"].items():
        assert figures["n"] == 5 and figures["k"] == 4 and figures["infra_errors"] == 0
        for key in ("pass@1", "cons@k", "truncated"):
            assert 0.0 <= figures[key] <= 1.0
        # the reported pass@1 is the mean of the per-sample verdicts written alongside
        mine = [r["correct"] for r in rows if r["dataset"] == name]
        assert math.isclose(figures["pass@1"], sum(mine) / len(mine), abs_tol=1e-12)
        formats = [r["format"] for r in rows if r["dataset"] == name]
        assert math.isclose(figures["format"], sum(formats) / len(formats), abs_tol=1e-12)
