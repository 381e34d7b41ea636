"""Agent episodes: episodes per minute, the sandbox's overhead per tool call, and how long an episode
waits for its workspace with and without the warm pool, all measured in one run.

- **Tool-call overhead**: the same commands (`true`, `cat` of a file, `python3 -c pass`, `ls -R`)
  run in a copy of the task's repository on the host (`bash -c` with the workspace server's
  environment, so the same interpreter; bare) and as `bash` requests to
  an episode's workspace server in its sandbox (`reward.session`, a request over its pipe, the
  command, the reply); the overhead is the difference of the medians, per command.
- **Workspace wait**: `WorkspacePool.acquire` with no warm pool (a sandbox started and the
  repository extracted while the episode waits) and with one (a prepared spare taken).
- **Episodes per minute**: `EpisodeRunner` on configs/swe-agent.yaml's tasks with its policy (the
  tiny model cold-started by scripts/agent_cold_start.py, made here unless --model names one):
  rounds of `prompts_per_batch` x `group_size` episodes, each in its own sandbox, to their final
  diff (grading, on the slow lane, is not part of this figure).

    .venv/bin/python benchmarks/agent.py [--n 30] [--rounds 4] [--model models/swe-agent]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relayrl.config import RunConfig
from relayrl.reward.inside.shell import ENV as SHELL_ENV
from relayrl.reward.sandbox import Sandbox
from relayrl.reward.session import SandboxSession
from relayrl.reward.swe.task import load_task
from relayrl.rollout.workspaces import WorkspacePool

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "swe-agent.yaml"
TASK = ROOT / "examples" / "swe-mini" / "roman-numerals"
COMMANDS = {"true": "true", "cat": "cat romans/convert.py", "python": "python3 -c pass", "ls": "ls -R"}


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def tool_overhead(cfg: RunConfig, n: int) -> dict:
    sandbox = Sandbox(cfg.reward.sandbox.with_limits(cfg.reward.swe.limits))
    pool = WorkspacePool(sandbox, cfg.reward.sandbox.python, warm=0)
    session = pool.acquire(load_task(TASK))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(shutil.copytree(TASK / "repo", Path(tmp) / "repo"))
        for name, command in COMMANDS.items():
            def bare(command=command):  # the workspace server's environment: the same interpreter and PATH
                subprocess.run(["/bin/bash", "-c", command], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env={**SHELL_ENV, "HOME": tmp, "TMPDIR": tmp}, check=True)

            def sandboxed(command=command):
                assert session.request("bash", 10, command=command, max_output=4000)["exit_code"] == 0

            bare(), sandboxed()  # warm up
            b, s = median_ms(bare, n), median_ms(sandboxed, n)
            out[name] = {"bare_ms": b, "sandboxed_ms": s, "overhead_ms": round(s - b, 2)}
    pool.release(session)
    pool.close()
    return out


def workspace_wait(cfg: RunConfig, n: int) -> dict:
    sandbox = Sandbox(cfg.reward.sandbox.with_limits(cfg.reward.swe.limits))
    task = load_task(TASK)
    result = {}
    for warm in (0, 1):
        pool = WorkspacePool(sandbox, cfg.reward.sandbox.python, warm=warm)
        pool.release(pool.acquire(task))  # the first acquire of a task is always cold
        times = []
        for _ in range(n):
            deadline = time.monotonic() + 30
            while warm and pool.spares(task) < warm and time.monotonic() < deadline:
                time.sleep(0.01)  # episodes are longer than a preparation: the spare is ready by then
            t = time.perf_counter()
            session = pool.acquire(task)
            times.append(time.perf_counter() - t)
            pool.release(session)
        pool.close()
        result["warm_pool" if warm else "no_pool"] = round(statistics.median(times) * 1000, 2)
    sessions = [SandboxSession.start(sandbox, cfg.reward.sandbox.python, pool.snapshots.get(task.repo))
                for _ in range(5)]
    result["prepare_ms"] = round(statistics.median(s.prepare_s for s in sessions) * 1000, 2)
    for s in sessions:
        s.close()
    return {f"workspace_wait_{k}" if k != "prepare_ms" else "workspace_prepare_ms": v for k, v in result.items()}


def episodes_per_minute(cfg: RunConfig, model: Path, rounds: int) -> dict:
    from relayrl.rollout.engine import TransformersEngine
    from relayrl.rollout.episode import EpisodeRunner
    from relayrl.tasks import Tasks, render
    from relayrl.wire import common_pb2

    engine = TransformersEngine(str(model))
    rows = Tasks(cfg.task).train
    runner = EpisodeRunner.create(cfg, engine)
    p = cfg.rollout.prompts_per_batch
    done, turns, submitted, started = 0, 0, 0, None
    try:
        for r in range(rounds + 1):  # round 0 warms the pool and the model up
            batch = [rows[(r * p + i) % len(rows)] for i in range(p)]
            prompts = [common_pb2.Prompt(prompt_id=f"b{r}-{i}", kind="swe", text=render(row, cfg.task, None).text,
                                         reference=render(row, cfg.task, None).reference) for i, row in enumerate(batch)]
            groups = runner.run(prompts)
            if r == 0:
                started = time.monotonic()
                continue
            episodes = [c for g in groups for c in g]
            done += len(episodes)
            turns += sum(c.turns for c in episodes)
            submitted += sum(c.finish_reason == "submit" for c in episodes)
    finally:
        runner.close()
    minutes = (time.monotonic() - started) / 60
    return {"episodes_per_min": round(done / minutes, 1), "episodes": done, "turns_per_episode": round(turns / done, 2),
            "submitted_share": round(submitted / done, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30, help="Repetitions of each timed call.")
    parser.add_argument("--rounds", type=int, default=4, help="Rounds of prompts_per_batch x group_size episodes.")
    parser.add_argument("--model", type=Path, default=None, help="The cold-started policy (made in a temporary "
                        "directory by scripts/agent_cold_start.py when not given).")
    args = parser.parse_args()
    cfg = RunConfig.load(CONFIG)
    figures = {"tool_call": tool_overhead(cfg, args.n), **workspace_wait(cfg, args.n)}
    print(json.dumps(figures), file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "model"
            subprocess.run([sys.executable, str(ROOT / "scripts" / "agent_cold_start.py"), str(CONFIG), str(model)],
                           check=True, stdout=subprocess.DEVNULL)
        figures.update(episodes_per_minute(cfg, model, args.rounds))
    figures["tool_call_overhead_max_ms"] = max(v["overhead_ms"] for v in figures["tool_call"].values())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
