"""Episode workspaces: the warm pool, their lifetime, and their teardown on every path, with the
real sandbox. A workspace lives as long as the process that holds it, not the thread that asked
for it; a process killed in the middle of a command leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from relayrl.config import RewardConfig
from relayrl.reward.sandbox import Sandbox
from relayrl.reward.swe.task import load_task
from relayrl.rollout.metrics import WORKSPACE_WAIT
from relayrl.rollout.workspaces import WorkspacePool
from tests.integration.agent_helpers import sandbox_processes, wait_for

ROOT = Path(__file__).resolve().parents[2]
TASK = load_task(ROOT / "examples" / "swe-mini" / "roman-numerals")


def make_pool(warm: int) -> WorkspacePool:
    cfg = RewardConfig()
    return WorkspacePool(Sandbox(cfg.sandbox.with_limits(cfg.swe.limits)), cfg.sandbox.python, warm)


def waits(warm: str) -> float:
    return WORKSPACE_WAIT.labels(warm)._sum.get()


def test_the_warm_pool_hands_out_prepared_workspaces_and_refills():
    pool = make_pool(warm=2)
    try:
        cold_before, warm_before = waits("false"), waits("true")
        first = pool.acquire(TASK)  # nothing prepared yet: waits for a sandbox and an extraction
        assert waits("false") > cold_before
        assert wait_for(lambda: pool.spares(TASK) == 2)  # refilled in the background
        second = pool.acquire(TASK)
        assert waits("true") > warm_before
        assert second.request("bash", 10, command="cat romans/__init__.py | wc -c", max_output=100)["exit_code"] == 0
        for session in (first, second):
            pool.release(session)
        assert wait_for(lambda: pool.spares(TASK) == 2)
    finally:
        pool.close()
    assert wait_for(lambda: sandbox_processes() == [], 10), sandbox_processes()


def test_a_workspace_outlives_the_thread_that_asked_for_it():
    # the sandbox's parent-death signal follows the thread that started bwrap: started by a
    # short-lived thread, the workspace would die when that thread ends
    pool = make_pool(warm=0)
    got = []
    try:
        asker = threading.Thread(target=lambda: got.append(pool.acquire(TASK)))
        asker.start()
        asker.join()
        time.sleep(0.5)
        session = got[0]
        assert session.alive
        assert session.request("view", 10, path="romans", max_output=1000)["output"].startswith("romans/")
        pool.release(session)
    finally:
        pool.close()


HOLDER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.integration.test_agent_workspaces import TASK, make_pool
    pool = make_pool(warm=1)
    session = pool.acquire(TASK)
    print("ready", flush=True)
    session.request("bash", 120, command="sleep 100 & sleep 100; echo never", max_output=100)
""")


def test_a_process_killed_mid_command_leaves_nothing_running():
    before = sandbox_processes()
    assert before == [], f"workspaces left by someone else: {before}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=str(ROOT))], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == b"ready", holder.stderr.read().decode()[-2000:]
        assert wait_for(lambda: len(sandbox_processes()) >= 2)  # the episode's and the warm spare's
        time.sleep(0.5)  # the command (two sleeps) is running in the episode's sandbox
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert wait_for(lambda: sandbox_processes() == [], 10), sandbox_processes()
    sleepers = subprocess.run(["pgrep", "-f", "^sleep 100$"], capture_output=True, text=True).stdout.split()
    assert sleepers == [], "a command of the killed process's workspace outlived it"


@pytest.mark.parametrize("warm", [0, 1])
def test_close_ends_every_workspace_it_holds(warm):
    pool = make_pool(warm=warm)
    session = pool.acquire(TASK)
    pool.release(session)
    assert not session.alive
    pool.close()
    assert wait_for(lambda: sandbox_processes() == [], 10), sandbox_processes()
