"""Every Grafana panel's query returns data from a live Prometheus scraping a real training run.

Also renders the gateway's status page of that run with a headless Chromium: the PNG must be a real
screenshot (RELAYRL_SAVE_SCREENSHOT=1 copies it to docs/gateway-status.png).

Starts `relayrl train` (the quickstart with evaluation every 10 steps, every service its own
process, the evaluator included), points Debian's `prometheus` at the metrics ports in
OUT/endpoints.json (deploy/prometheus/local.py), waits until the learner has trained some steps,
then runs every query of every dashboard (deploy/grafana) while the run is still going and fails
on any that is empty or invalid. No dashboard can reference a metric, label or label value that
the services do not emit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from relayrl.replay.private_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{what} after {timeout_s} s")


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """A quickstart run with a Prometheus scraping it every second; yields the Prometheus URL."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is not installed: run scripts/setup.sh (apt-get install prometheus)")
    tmp_path = tmp_path_factory.mktemp("live")
    out = tmp_path / "run"
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config["eval"] = {"every_steps": 10}  # the held-out panels need an evaluator
    (tmp_path / "quickstart.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "train", str(tmp_path / "quickstart.yaml"),
                            "--steps", "400", "--out", str(out), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    prom = None
    try:
        endpoints = wait_for(lambda: (out / "endpoints.json").exists() and json.loads((out / "endpoints.json").read_text()),
                             120, "no endpoints.json", run)
        config = load(ROOT / "deploy" / "prometheus" / "local.py").scrape_config(endpoints, interval_s=1)
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=open(tmp_path / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(url), 60, "prometheus not ready", prom)
        # some steps trained, so every service has counted something and rates have several points
        wait_for(lambda: (out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 15,
                 300, "fewer than 15 learner steps", run)
        yield url, run, out
    finally:
        if run.poll() is None:
            run.terminate()  # SIGTERM: the launcher stops every child of the run
            run.wait(timeout=60)
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_every_dashboard_query_returns_data(live_run):
    url, run, _ = live_run
    queries = load(ROOT / "deploy" / "grafana" / "dashboards.py").queries()
    assert len(queries) >= 30
    targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    assert {t["labels"]["component"] for t in targets} == {"learner", "reward", "actor"}
    wait_for(lambda: all(t["health"] == "up" for t in httpx.get(f"{url}/api/v1/targets", timeout=5)
                         .json()["data"]["activeTargets"]), 30, "targets not all up", run)

    def empty() -> list[str]:
        missing = []
        for uid, title, expr in queries:
            # Grafana's $__rate_interval is 4 scrape intervals at least; here we scrape every second
            body = httpx.get(f"{url}/api/v1/query", params={"query": expr.replace("$__rate_interval", "15s")},
                             timeout=10).json()
            assert body["status"] == "success", (uid, title, expr, body)
            if not body["data"]["result"]:
                missing.append(f"{uid} / {title}: {expr}")
        return missing

    missing = empty()
    deadline = time.monotonic() + 60
    while missing and time.monotonic() < deadline:  # a rate needs two scrapes after its first event
        assert run.poll() is None, "the training run ended before every query had data"
        time.sleep(2)
        missing = empty()
    assert not missing, "queries with no data:\n" + "\n".join(missing)


def test_gateway_status_page_of_the_run_renders_headless(live_run, tmp_path):
    _, run, out = live_run
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if browser is None:
        pytest.fail("no headless Chromium: run scripts/setup.sh (apt-get install chromium-headless-shell)")
    port = free_port()
    gateway = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", "gateway", "--endpoints",
                                str(out / "endpoints.json"), "--port", str(port)],
                               stdout=open(tmp_path / "gateway.log", "wb"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        token = (out / "auth-token").read_text().strip()  # the run's token guards the gateway too
        auth = {"Authorization": f"Bearer {token}"}
        wait_for(lambda: _get(f"{url}/healthz"), 30, "gateway not up", gateway)
        # the first status calls also connect the gateway's gRPC channels to a busy run
        status = wait_for(lambda: (lambda s: s if s["learner"] and s["reward"] else None)(
            httpx.get(f"{url}/v1/status", headers=auth, timeout=10).json()), 60, "learner or reward unavailable", gateway)
        assert status["learner"]["step"] > 0 and status["reward"]["groups_scored"] > 0
        assert {a["name"] for a in status["actors"]} == {"actor-0", "actor-1"}
        png = tmp_path / "gateway-status.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1200,900", f"--screenshot={png}", f"{url}/?token={token}"],
                       check=True, capture_output=True, timeout=120)
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a page, not a blank
        if os.environ.get("RELAYRL_SAVE_SCREENSHOT") == "1":
            shutil.copy(png, ROOT / "docs" / "gateway-status.png")
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    assert run.poll() is None


def _get(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
