"""The first hour, end to end: the README's quickstart command (shortened with --steps) run twice in
a row into the default folder (`runs/latest`) finishes both times, the second by continuing the
run the first left; stdout carries the JSON summary alone (no progress line without a terminal);
each process exports only its own metric families; after the run the gateway answers from the run
directory; and no process of either run is left (checked by pid).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from relayrl.replay.private_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# families a process of each kind must not export (another service's)
FOREIGN = {"learner": ("relayrl_rollout_", "relayrl_version_lag", "relayrl_reward_", "relayrl_gateway_"),
           "reward": ("relayrl_learner_", "relayrl_rollout_", "relayrl_policy_version", "relayrl_groups_",
                      "relayrl_gateway_"),
           "actor": ("relayrl_learner_", "relayrl_groups_", "relayrl_sample_staleness", "relayrl_queue_",
                     "relayrl_reward_", "relayrl_gateway_"),
           "gateway": ("relayrl_learner_", "relayrl_rollout_", "relayrl_reward_", "relayrl_policy_version",
                       "relayrl_groups_", "relayrl_queue_", "relayrl_version_lag")}
OWN = {"learner": "relayrl_learner_reward_mean", "reward": "relayrl_reward_requests_total",
       "actor": "relayrl_rollout_tokens_total", "gateway": "relayrl_gateway_requests_total"}


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], start time [19])."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`, with its start time (a pid can be reused by another)."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        if (fields := _stat(entry)) is not None:
            parents.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, todo = {}, [pid]
    while todo:
        for child, started in parents.get(todo.pop(), []):
            found[child] = started
            todo.append(child)
    return found


def alive(pid: int, started: str) -> bool:
    """The process `pid` that started at `started` still runs (not a zombie, not a reused pid)."""
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


def left_behind(seen: dict[int, str], timeout_s: float = 30.0) -> dict[int, str]:
    """The processes of `seen` still running `timeout_s` after the run ended (a forkserver exits
    once it reads the end of its dead parent's pipe, which on a loaded machine takes a moment)."""
    deadline = time.monotonic() + timeout_s
    while (left := [p for p, started in seen.items() if alive(p, started)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {p: describe(p) for p in left if alive(p, seen[p])}


def describe(pid: int) -> str:
    """A leftover as a person would look it up: its command line, parent and threads."""
    status = dict(line.split(":\t", 1) for line in (Path("/proc") / str(pid) / "status").read_text().splitlines()
                  if ":\t" in line)
    command = (Path("/proc") / str(pid) / "cmdline").read_bytes()[:100].replace(b"\0", b" ").decode(errors="replace")
    return f"{command} (ppid {status.get('PPid')}, {status.get('Threads')} threads)"


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def check_own_families(kind: str, url: str) -> None:
    names = families(httpx.get(url, timeout=10).text)
    assert OWN[kind] in names, (kind, sorted(names))
    foreign = sorted(n for n in names if n.startswith(FOREIGN[kind]))
    assert not foreign, f"{kind} exports another service's families: {foreign}"


def quickstart(cwd: Path, seen: dict[int, str], scrape: bool) -> subprocess.CompletedProcess:
    """The README's command with --steps 5 and the default --out; every pid it starts goes in `seen`."""
    proc = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "train", str(ROOT / "configs" / "quickstart.yaml"),
                             "--steps", "5"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, scraped = cwd / "runs" / "latest", not scrape
    deadline = time.monotonic() + 600
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not finish in 10 minutes"
        seen.update(descendants(proc.pid))
        metrics = out / "metrics.jsonl"
        if not scraped and metrics.exists() and metrics.read_text().strip():  # every service is up
            endpoints = json.loads((out / "endpoints.json").read_text())["services"]
            for name, e in endpoints.items():
                check_own_families(name.split("-")[0], f"http://127.0.0.1:{e['metrics_port']}/metrics")
            scraped = True
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    assert scraped, "the run ended before its services could be scraped"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_the_quickstart_twice_into_the_default_folder(tmp_path):
    seen: dict[int, str] = {}
    first = quickstart(tmp_path, seen, scrape=True)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)  # stdout is the summary alone: no progress line before it
    assert first.stdout.count("\n") == 1 and summary["steps"] == 5
    assert seen and not left_behind(seen)

    t0 = time.monotonic()
    second = quickstart(tmp_path, seen, scrape=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "continuing the run in runs/latest" in second.stderr
    again = json.loads(second.stdout)
    assert again["steps"] == 5 and again["groups_trained"] == summary["groups_trained"]  # nothing trained twice
    assert time.monotonic() - t0 < 300  # it does not hang (it used to wait for ever)
    assert not (left := left_behind(seen)), f"processes left behind: {left}"

    # after the run: the gateway answers from the run directory, and exports only its own metrics
    out, port = tmp_path / "runs" / "latest", free_port()
    gateway = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", "gateway", "--endpoints",
                                str(out / "endpoints.json"), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and gateway.poll() is None, "the gateway did not start"
                time.sleep(0.2)
        token = (out / "auth-token").read_text().strip()
        status = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert status.status_code == 200 and status.json()["finished"] is True
        assert status.json()["summary"] == json.loads((out / "summary.json").read_text())
        check_own_families("gateway", f"{url}/metrics")
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
