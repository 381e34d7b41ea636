"""`relayrl report`: a run directory's files → a self-contained HTML page and PNGs, several runs side
by side with their config differences; what the policy wrote is escaped; a directory that is not a
run is one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from relayrl.config import RunConfig
from relayrl.learner.runlog import RunLog
from relayrl.report import NotARun, load_run, write_report
from relayrl.report.runs import config_diff

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(out: Path, algorithm: str = "grpo", steps: int = 60, evals: bool = True,
             completion: str = "<answer>4</answer>") -> Path:
    """A run directory as the learner and launcher leave it, written through the real RunLog."""
    RunConfig(run=out.name, learner={"loss": {"algorithm": algorithm}}).dump(out.mkdir(parents=True) or out / "config.yaml")
    log = RunLog(out)
    for step in range(1, steps + 1):
        r = 0.8 * (1 - math.exp(-step / 20))
        log.step(step, step, 16, 0.05, 0.2, step * 0.3,
                 {"reward_mean": r, "reward_accuracy_mean": r, "entropy": 3 - r, "kl": 0.01 * r, "mismatch_kl": 1e-4,
                  "response_length_mean": 3.5 + r, "response_length_max": 4, "response_clip_frac": 0.5,
                  "staleness_mean": 0.5, "staleness_max": 1, "dropped_stale": step // 20, "dropped_duplicate": 0,
                  "tokens": 400, "weight_sync_s": 0.003})
        if step in (1, steps):
            with (out / "samples.jsonl").open("a") as f:
                f.write(json.dumps({"step": step, "prompt": "Which digit? 11223", "completion": completion,
                                    "reward": r, "version": step - 1}) + "\n")
    log.close({"step": steps})
    if evals:
        with (out / "eval.jsonl").open("w") as f:
            for v in range(0, steps + 1, 20):
                f.write(json.dumps({"version": v, "dataset": "task", "pass@1": v / 100, "cons@k": v / 90,
                                    "format": 0.0, "n": 64, "k": 4}) + "\n")
    return out


def test_one_run_makes_a_page_with_its_figures(tmp_path):
    run = fake_run(tmp_path / "grpo")
    index = write_report([run], tmp_path / "report")
    html = index.read_text()
    for stem in ("reward_accuracy", "length", "entropy_kl", "staleness_drops", "throughput"):
        assert (tmp_path / "report" / f"{stem}.png").read_bytes().startswith(PNG)
    assert html.count('src="data:image/png;base64,') == 5 and "http" not in html.split("<body>")[1]  # self-contained
    assert "grpo" in html and "task 0.600 (v60)" in html  # the newest held-out figure in the summary
    assert "early: step 1" in html and "late: step 60" in html


def test_runs_side_by_side_show_their_config_differences(tmp_path):
    a, b = fake_run(tmp_path / "grpo"), fake_run(tmp_path / "dapo", algorithm="dapo", evals=False)
    diff = dict(config_diff([load_run(a), load_run(b)]))
    assert diff == {"run": ["grpo", "dapo"], "learner.loss.algorithm": ["grpo", "dapo"]}
    html = write_report([a, b], tmp_path / "report").read_text()
    assert "Config differences" in html and "learner.loss.algorithm" in html
    assert "Sample completions: grpo" in html and "Sample completions: dapo" in html


def test_what_the_policy_wrote_is_escaped(tmp_path):
    run = fake_run(tmp_path / "x", completion='<script>alert("pwned")</script><img src=x onerror=alert(1)>')
    html = write_report([run], tmp_path / "report").read_text()
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html


def test_runs_with_the_same_directory_name_are_told_apart(tmp_path):
    a, b = fake_run(tmp_path / "one" / "run"), fake_run(tmp_path / "two" / "run")
    html = write_report([a, b], tmp_path / "report").read_text()
    assert "one/run" in html and "two/run" in html


def test_a_directory_that_is_not_a_run_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARun, match=r"empty: no metrics.jsonl records \(not a relayrl run directory"):
        load_run(tmp_path / "empty")
    run = fake_run(tmp_path / "broken", steps=3)
    (run / "eval.jsonl").write_text('{"version": 0}\nnot json\n{"version": 1}\n')
    with pytest.raises(NotARun, match=r"eval.jsonl: line 2 is not JSON"):
        load_run(run)
    (run / "eval.jsonl").write_text('{"version": 0, "dataset": "task", "pass@1": 0, "cons@k": 0}\n{"vers')
    assert len(load_run(run).evals) == 1  # a live run's half-written last line is not an error
