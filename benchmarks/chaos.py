"""Chaos: kill -9 services at random moments, repeatedly, during a quickstart run; lose nothing.

Runs the quickstart's services as separate processes on loopback (a private Redis with an
append-only file fsynced on every write, the reward service, the learner, two actors), and while
the learner trains, SIGKILLs one of them at random intervals: an actor, the reward service, the
learner (restarted with the same command: it resumes), or Redis (restarted from its AOF on the same port). A
process that dies on its own (a learner that lost Redis) is restarted the same way. When the
learner has trained every step, the ledger (relayrl.ledger) accounts for every admitted prompt:
trained, dropped with a reason, or still in flight; `lost` and `duplicated` must be 0.

    .venv/bin/python benchmarks/chaos.py [--steps 120] [--kill-every 6 | --kills N] [--seed 0] [--out DIR]

The last line is one JSON object: kills (total and by target), lost, duplicated, groups_trained,
dropped, in_flight, steps, wall_s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from relayrl.config import RunConfig
from relayrl.ledger import account
from relayrl.lifetime import die_with_parent
from relayrl.local import assign_endpoints
from relayrl.replay.private_redis import free_port, redis_command, wait_port
from relayrl.rpc import TOKEN_ENV, wait_ready

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["actor-0", "actor-1", "reward", "learner", "redis"]


class Supervisor:
    """Starts each service by name, restarts it after a kill, stops them all at the end."""

    def __init__(self, cfg_path: Path, out: Path, model: Path, steps: int, endpoints: dict, redis_port: int) -> None:
        self.out, self.procs = out, {}
        self.redis_port = redis_port
        py = [sys.executable, "-m", "relayrl.cli", "serve"]
        url = endpoints["redis"]

        def common(name):
            e = endpoints["services"][name]
            return ["--config", str(cfg_path), "--redis", url, "--port", e["grpc"].rsplit(":", 1)[1]]

        learner, reward = endpoints["services"]["learner"]["grpc"], endpoints["services"]["reward"]["grpc"]
        self.argv = {
            "redis": redis_command(redis_port, out / "redis"),
            "reward": [*py, "reward", *common("reward")],
            "learner": [*py, "learner", *common("learner"), "--model", str(model), "--out", str(out),
                        "--steps", str(steps)],
            **{f"actor-{i}": [*py, "actor", *common(f"actor-{i}"), "--model", str(model), "--actor-id",
                              f"actor-{i}", "--learner", learner, "--reward", reward] for i in range(2)},
        }
        self.learner_starts = 0

    def start(self, name: str) -> None:
        argv = list(self.argv[name])  # the same command every time: a learner restart is a resume
        if name == "learner":
            self.learner_starts += 1
        log = open(self.out / "logs" / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=die_with_parent,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
        if name == "redis":
            wait_port(self.redis_port, timeout_s=20)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def learner_steps(out: Path) -> int:
    """Steps the learner has logged (a resume truncates the log to its checkpoint)."""
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def run(steps: int, kill_every: float, seed: int, out: Path, kills_at_steps: int | None = None) -> dict:
    from relayrl.model.tiny import init_tiny

    rng = random.Random(seed)
    cfg = RunConfig.load(ROOT / "configs" / "quickstart.yaml")
    redis_port = free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    data = cfg.model_dump(mode="json")
    data["run"] = "chaos"
    data["queue"].update(url=url, lease_idle_s=3.0)
    data["learner"].update(steps=steps, checkpoint={"every": 5})
    cfg = RunConfig.parse(data)  # validated: a misspelt key would fail here, not be ignored
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    cfg_path = out / "config.yaml"
    cfg.dump(cfg_path)
    model = init_tiny(out / "init-model", cfg.model.tiny)
    os.environ.setdefault(TOKEN_ENV, secrets.token_urlsafe(24))
    endpoints = assign_endpoints(cfg, url)
    sup = Supervisor(cfg_path, out, model, steps, endpoints, redis_port)
    kills: Counter = Counter()
    restarts: Counter = Counter()
    t0 = time.monotonic()
    try:
        sup.start("redis")
        sup.start("reward")
        sup.start("learner")
        for name in ("reward", "learner"):
            wait_ready(endpoints["services"][name]["grpc"], timeout_s=120)
        sup.start("actor-0")
        sup.start("actor-1")
        next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every
        # with `kills_at_steps`, kill at that many random learner steps instead of on a clock,
        # so the count does not depend on how fast this machine trains
        # (and go round every target in a shuffled order, so five kills hit each kind once)
        schedule = sorted(rng.sample(range(2, steps - 1), kills_at_steps)) if kills_at_steps else None
        rounds = rng.sample(TARGETS, len(TARGETS))
        while True:
            learner = sup.procs["learner"]
            if learner.poll() == 0:
                break
            for name, proc in list(sup.procs.items()):
                if proc.poll() is not None:  # died on its own (e.g. the learner when Redis vanished)
                    restarts[name] += 1
                    sup.start(name)
            due = (schedule and learner_steps(out) >= schedule[0]) if schedule is not None \
                else time.monotonic() >= next_kill
            if due:
                if schedule:
                    schedule.pop(0)
                time.sleep(rng.uniform(0.0, 0.5))  # somewhere inside the step, not at its boundary
                victim = rounds[sum(kills.values()) % len(rounds)] if schedule is not None else rng.choice(TARGETS)
                sup.kill(victim)
                kills[victim] += 1
                time.sleep(rng.uniform(0.1, 1.0))
                sup.start(victim)
                next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every
            time.sleep(0.1)
        wall = time.monotonic() - t0
        ledger = account(url, cfg.run, out)
    finally:
        sup.stop()
    return {"kills": sum(kills.values()), "kills_by_target": dict(kills), "restarts_after_crash": dict(restarts),
            **ledger.summary(cfg.run), "steps": steps, "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps the learner must complete")
    parser.add_argument("--kill-every", type=float, default=6.0, help="mean seconds between kills")
    parser.add_argument("--kills", type=int, default=None,
                        help="instead of --kill-every: this many kills, at random learner steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="relayrl-chaos-"))
    print(json.dumps(run(args.steps, args.kill_every, args.seed, out, args.kills)))


if __name__ == "__main__":
    main()
