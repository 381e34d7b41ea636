"""Watching and judging real runs, end to end: the quickstart trained by GRPO with
`tracking: [tensorboard, wandb, mlflow]` (W&B offline) and evaluation every 10 steps, then by DAPO.

- What each tracker wrote loads back in its library's own reader with every step's reward, the
  held-out series at the evaluated versions, the config and the sample tables.
- `relayrl status` through the CLI while the GRPO run trains (its admission paused through Redis
  for the moment, so the run is certainly alive) and once it has finished.
- `relayrl report` of GRPO vs DAPO renders, and headless Chromium screenshots it
  (RELAYRL_SAVE_SCREENSHOT=1 copies it to docs/report-grpo-vs-dapo.png; RELAYRL_WATCH_STEPS sets
  the runs' length, 60 by default).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml

from tests.tracker_readers import read_mlflow, read_tensorboard, read_wandb

ROOT = Path(__file__).resolve().parents[2]
STEPS = int(os.environ.get("RELAYRL_WATCH_STEPS", "60"))
pytestmark = pytest.mark.slow


def write_config(path: Path, algorithm: str, tracking: list[str]) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config["run"] = algorithm
    config["learner"]["loss"]["algorithm"] = algorithm
    config["tracking"] = {"backends": tracking, "samples_every": 10}
    config["eval"] = {"every_steps": 10}
    path.write_text(yaml.safe_dump(config))
    return path


def relayrl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relayrl.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "120"})


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what}: the run exited with {proc.returncode}"
        if value := predicate():
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


def steps_done(out: Path) -> int:
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("watch")
    grpo, dapo = tmp / "grpo", tmp / "dapo"
    env = {**os.environ, "WANDB_API_KEY": ""}  # offline: never a login, never the network
    train = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "train",
                              str(write_config(tmp / "grpo.yaml", "grpo", ["tensorboard", "wandb", "mlflow"])),
                              "--steps", str(STEPS), "--out", str(grpo), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: steps_done(grpo) >= 3, 300, "fewer than 3 steps", train)
        endpoints = json.loads((grpo / "endpoints.json").read_text())
        r = redis.Redis.from_url(endpoints["redis"])
        r.set(f"relayrl:{endpoints['run']}:paused", "1")  # the run stays alive while we look at it
        try:
            live = relayrl("status", str(grpo))
        finally:
            r.delete(f"relayrl:{endpoints['run']}:paused")
            r.close()
        output, _ = train.communicate(timeout=600)
    finally:
        if train.poll() is None:
            train.kill()
    assert train.returncode == 0, output.decode()[-3000:]
    subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(write_config(tmp / "dapo.yaml", "dapo", [])),
                    "--steps", str(STEPS), "--out", str(dapo), "--quiet"], check=True, capture_output=True, timeout=900)
    return {"grpo": grpo, "dapo": dapo, "live": live, "tmp": tmp}


def evaluated(out: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    return sorted((r["version"], r["pass@1"]) for r in records if r["dataset"] == "task")


def test_evaluation_ran_beside_training(runs):
    for out in (runs["grpo"], runs["dapo"]):
        versions = [v for v, _ in evaluated(out)]
        assert len(versions) >= 3 and versions[-1] == STEPS, versions  # the last version is always evaluated
        assert len(set(versions)) == len(versions)


def test_each_tracker_loads_back_in_its_own_reader(runs):
    out = runs["grpo"]
    steps = list(range(1, STEPS + 1))
    held = evaluated(out)
    tb = read_tensorboard(out / "tensorboard")
    assert [s for s, _ in tb["scalars"]["reward/mean"]] == steps
    for key in ("reward/accuracy", "policy/entropy", "kl/ref", "kl/mismatch", "clip/total", "offpolicy/ess",
                "length/max", "staleness/max", "drops/stale", "throughput/tokens_per_s", "time/weight_sync_s"):
        assert len(tb["scalars"][key]) == STEPS, key
    assert [(s, round(v, 6)) for s, v in tb["scalars"]["eval/task/pass_at_1"]] == [(v, round(p, 6)) for v, p in held]
    assert tb["histograms"]["length/distribution"] == steps and tb["histograms"]["staleness/distribution"] == steps
    assert [s for s, _ in tb["text"]["samples"]] == [1, *range(10, STEPS + 1, 10)]
    assert "algorithm: grpo" in tb["text"]["config"][0][1]

    wb = read_wandb(out)
    rows = [row for row in wb["history"] if "reward/mean" in row]
    assert [row["_step"] for row in rows] == steps
    assert [row["reward/mean"] for row in rows] == pytest.approx([v for _, v in tb["scalars"]["reward/mean"]], rel=1e-6)
    assert sorted((row["eval/version"], row["eval/task/pass_at_1"]) for row in wb["history"]
                  if "eval/task/pass_at_1" in row) == held
    assert wb["config"]["learner"]["loss"]["algorithm"] == "grpo" and wb["run"].project == "relayrl"

    ml = read_mlflow((out / "mlruns").as_uri())
    assert ml["status"] == "FINISHED" and ml["params"]["learner.loss.algorithm"] == "grpo"
    assert [s for s, _ in ml["metrics"]["reward/mean"]] == steps
    assert ml["metrics"]["eval/task/pass_at_1"] == held
    assert "config.json" in ml["artifacts"] and "samples/step-000010.json" in ml["artifacts"]


def test_status_through_the_cli_on_a_running_and_a_finished_run(runs):
    live = runs["live"]
    assert live.returncode == 0, live.stderr
    assert "training" in live.stdout and f"/ {STEPS}" in live.stdout
    assert "Queues (admission paused)" in live.stdout and "prompts" in live.stdout
    assert "actor-0" in live.stdout and "actor-1" in live.stdout
    done = relayrl("status", str(runs["grpo"]))
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout and f"{STEPS} / {STEPS}" in done.stdout and "summary.json" in done.stdout
    assert f"(v{STEPS})" in done.stdout  # the newest held-out figure


def test_report_of_grpo_vs_dapo_renders_in_a_headless_browser(runs):
    report = runs["tmp"] / "report"
    result = relayrl("report", str(runs["grpo"]), str(runs["dapo"]), "--out", str(report))
    assert result.returncode == 0, result.stderr
    html = (report / "index.html").read_text()
    assert "learner.loss.algorithm" in html and "Sample completions: dapo" in html
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if browser is None:
        pytest.fail("no headless Chromium: run scripts/setup.sh (apt-get install chromium-headless-shell)")
    png = report / "screenshot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1320,2000", f"--screenshot={png}", (report / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 100_000  # the figures, not a blank page
    if os.environ.get("RELAYRL_SAVE_SCREENSHOT") == "1":  # 256 colours: a third of the bytes, the same picture
        from PIL import Image

        Image.open(png).convert("RGB").quantize(256).save(ROOT / "docs" / "report-grpo-vs-dapo.png", optimize=True)
