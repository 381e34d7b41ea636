"""The slow SWE tasks (examples/swe-slow) the real-reward benchmark trains on, through the real SWE
verifier and sandbox: each gold patch resolves its task, the cold-started model's diff (it adds a
file) resolves none but runs every test, and each suite takes 5 to 60 seconds of wall time.
All ten jobs run at once, as the benchmark runs them."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relayrl.config import RewardConfig
from relayrl.reward.swe.task import load_manifest
from relayrl.reward.verifiers.swe import SweVerifier

ROOT = Path(__file__).resolve().parents[2]


def cold_start_diff() -> str:
    spec = importlib.util.spec_from_file_location("swe_cold_start", ROOT / "scripts" / "swe_cold_start.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NOTES_DIFF


@pytest.mark.slow
def test_gold_resolves_each_slow_task_and_the_cold_start_diff_runs_every_suite():
    tasks = load_manifest(ROOT / "examples" / "swe-slow" / "manifest.jsonl")
    assert len(tasks) == 5
    verifier = SweVerifier(RewardConfig.model_validate({"swe": {"concurrency": 2 * len(tasks)}}))
    jobs = [(task, kind, patch) for task in tasks
            for kind, patch in (("gold", (task.root / "gold.patch").read_text()), ("notes", cold_start_diff()))]
    try:
        with ThreadPoolExecutor(len(jobs)) as pool:
            scores = list(pool.map(lambda job: verifier.score_patch(job[0], job[2]), jobs))
    finally:
        verifier.close()
    for (task, kind, _), score in zip(jobs, scores):
        details = score.details
        assert score.outcome == ("pass" if kind == "gold" else "fail"), (task.instance_id, kind, details)
        assert details["apply"]["ok"] and isinstance(details["exit_code"], int), (task.instance_id, kind, details)
        assert all(v == "passed" for v in details["pass_to_pass"].values()), (task.instance_id, kind, details)
        assert 5.0 <= details["sandbox_s"] <= 60.0, (task.instance_id, kind, details["sandbox_s"])
