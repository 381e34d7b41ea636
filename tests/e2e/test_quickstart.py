"""End to end: the quickstart across separate processes (real Redis, real gRPC) learns.

Also the launcher's promises: Ctrl-C or a crashed child stops every process of the run, and
none is left behind.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
RELAYRL = [sys.executable, "-m", "relayrl.cli"]

pytestmark = pytest.mark.slow


def run_processes(marker: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of every live process whose command line mentions `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (Path("/proc") / pid / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if marker in cmd and state != "Z" and int(pid) != os.getpid():
            found.append((int(pid), cmd))
    return found


def wait_for_steps(out: Path, n: int, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    metrics = out / "metrics.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return
        time.sleep(0.5)
    raise TimeoutError(f"fewer than {n} steps after {timeout_s} s")


def foreground_signals() -> None:
    """In the launcher, before it execs: SIGINT at its default, as in a terminal's foreground job.
    A test run started in the background of a script (`cmd &` without job control) inherits SIGINT
    ignored, and Python then keeps ignoring it: Ctrl-C could not reach such a launcher at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def long_run(out: Path) -> Iterator[subprocess.Popen]:
    """`relayrl train` of the quickstart for far more steps than a test waits for; a launcher still
    running when the test ends (it failed) gets SIGTERM, which stops its children, then SIGKILL."""
    proc = subprocess.Popen([*RELAYRL, "train", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(out),
                             "--steps", "1000", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=foreground_signals)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_quickstart_learns_across_processes(tmp_path):
    out = tmp_path / "quickstart"
    result = subprocess.run([*RELAYRL, "train", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(out),
                             "--quiet"], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    print("quickstart summary:", json.dumps(summary))
    assert summary["steps"] == 300
    assert summary["groups_trained"] == 300 * 16
    assert summary["reward_first"] > 0  # low, but not zero: GRPO has a signal from the start
    assert summary["reward_last"] - summary["reward_first"] >= 0.3
    assert summary["max_staleness_trained"] <= 1  # max_staleness: 1; older groups are dropped
    for name in ("redis", "reward", "learner", "actor-0", "actor-1"):
        assert (out / "logs" / f"{name}.log").exists(), name
    # both actors generated and followed the learner's versions
    for actor in ("actor-0", "actor-1"):
        assert "loaded version" in (out / "logs" / f"{actor}.log").read_text()
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "step-000300")
    assert all(torch.isfinite(t).all() for t in final.state_dict().values())
    assert run_processes(str(out)) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_every_process(tmp_path, signum):
    """Ctrl-C, and the SIGTERM of a process manager (or of `long_run`'s clean-up), stop the run."""
    out = tmp_path / "interrupted"
    with long_run(out) as proc:
        wait_for_steps(out, 3, proc)
        assert len(run_processes(str(out))) >= 5  # redis, reward, learner, two actors
        proc.send_signal(signum)
        proc.wait(timeout=60)
    assert proc.returncode == 130
    time.sleep(0.5)
    assert run_processes(str(out)) == []


def test_a_crashed_actor_stops_the_run_and_leaves_no_orphan(tmp_path):
    out = tmp_path / "crashed"
    with long_run(out) as proc:
        wait_for_steps(out, 2, proc)
        actor = [pid for pid, cmd in run_processes(str(out)) if "--actor-id actor-1" in cmd]
        assert len(actor) == 1
        os.kill(actor[0], signal.SIGKILL)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "actor-1 exited" in output
    time.sleep(0.5)
    assert run_processes(str(out)) == []
