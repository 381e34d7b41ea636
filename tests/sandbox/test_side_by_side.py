"""Two scoring processes side by side on one host (reward workers, evaluation and the CLI do
this; so do test suites run at once): neither may harm the other's jobs. Each process is a real
`CodeVerifier` in its own interpreter with the same sandbox settings. One runs a job that keeps
as many processes as its limits allow; meanwhile the other's jobs must still start and pass.
With job uids numbered per process both would run as the same host uid, whose RLIMIT_NPROC
counts the processes of both jobs: the second could not start its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")

SCORER = """
import json, sys, time
from relayrl.config import CodeConfig, RewardConfig, SandboxConfig
from relayrl.reward.verifiers.code import CodeVerifier

uid_base, program, expected, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
cfg = RewardConfig(sandbox=SandboxConfig(max_processes=16, uid_base=uid_base, uid_count=8),
                   code=CodeConfig(concurrency=1, cache_size=0))
verifier = CodeVerifier(cfg)
spec = json.dumps({"kind": "stdio", "timeout_s": 10, "cases": [{"stdin": "", "stdout": expected}]})
print("ready", flush=True)
outcomes, stop = [], time.monotonic() + seconds
while True:
    score = verifier.score(program, spec)
    outcomes.append([score.outcome, score.details.get("cases", score.details)])
    if time.monotonic() > stop:
        break
print(json.dumps(outcomes), flush=True)
"""

# Keeps 12 processes (with its judge and zygote: 15 of its 16) for 4 s, then passes.
HOG = """
import os, time
children = []
for _ in range(12):
    pid = os.fork()
    if pid == 0:
        time.sleep(4)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print('held')
"""
# Needs a few processes of its own.
NEIGHBOUR = """
import os
children = [os.fork() or os._exit(0) for _ in range(4)]
for pid in children:
    os.waitpid(pid, 0)
print('ok')
"""


def scorer(uid_base: int, program: str, expected: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCORER, str(uid_base), program, expected, str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_scoring_processes_do_not_harm_each_other():
    uid_base = 2_300_000 + (os.getpid() % 10_000) * 8  # one range for both, as two workers of one config
    hog = scorer(uid_base, HOG, "held", 0)
    try:
        assert hog.stdout.readline().strip() == "ready", hog.stderr.read()
        time.sleep(1.0)  # the hog's job is running and holds its processes
        neighbour = scorer(uid_base, NEIGHBOUR, "ok", 2.0)
        neighbour_out, neighbour_err = neighbour.communicate(timeout=120)
        hog_out, hog_err = hog.communicate(timeout=120)
    finally:
        for proc in (hog, locals().get("neighbour")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    neighbour_runs = json.loads(neighbour_out.splitlines()[-1])
    hog_runs = json.loads(hog_out.splitlines()[-1])
    assert [outcome for outcome, _ in hog_runs] == ["pass"], hog_runs
    assert neighbour_runs and all(outcome == "pass" for outcome, _ in neighbour_runs), neighbour_runs
