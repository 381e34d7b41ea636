"""The single-machine launcher behind `relayrl train`: every service its own OS process.

It starts a private redis-server, the reward service, the learner and N actors as child
processes talking gRPC on loopback, the same code paths as a cluster. Each child gets
PR_SET_PDEATHSIG, so it dies with the launcher even on SIGKILL; on Ctrl-C, on the learner's end,
or when any child dies, every child is stopped (SIGTERM, then SIGKILL) and none is left behind.
Progress (step, reward, version, queue depths) comes from the learner's status RPC and Redis.
Every run gets its own auth token (rpc.py), handed to the children in their environment.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from relayrl.config import RunConfig
from relayrl.replay.keys import StreamKeys
from relayrl.replay.private_redis import free_port, redis_command, wait_port

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: deliver SIGTERM to the child when the launcher dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path


class Processes:
    """The children of one run; `stop()` leaves none behind."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str]) -> Child:
        log = self.logs / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(log, "ab") as fh:
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, preexec_fn=_die_with_parent)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def failed(self) -> Child | None:
        """A child that exited (any child exiting before the learner is done is a failure)."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self, grace_s: float = 5.0) -> None:
        for c in self.children:
            if c.proc.poll() is None:
                c.proc.terminate()
        deadline = time.monotonic() + grace_s
        for c in self.children:
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()


def start_redis(procs: Processes, out: Path) -> str:
    port = free_port()
    procs.start("redis", redis_command(port, out / "redis"))
    wait_port(port)
    return f"redis://127.0.0.1:{port}/0"


def assign_endpoints(cfg: RunConfig, redis_url: str) -> dict:
    """Loopback addresses of every service of the run: gRPC and Prometheus metrics ports.

    Written to OUT/endpoints.json, so tools (a Prometheus scrape config, the gateway) find them."""
    names = ["reward", "learner", *(f"actor-{i}" for i in range(cfg.rollout.num_actors))]
    services = {n: {"grpc": f"127.0.0.1:{free_port()}", "metrics_port": free_port()} for n in names}
    return {"run": cfg.run, "redis": redis_url, "services": services}


def summarize(records: list[dict], wall_s: float, status: dict) -> dict:
    """summary.json: reward of the first and last 10% of steps, counts, version lag, wall time.

    `status` is the learner's final learner-status.json."""
    if not records:
        raise RuntimeError("the learner trained no step")
    n = max(1, len(records) // 10)

    def mean_reward(rs):
        weights = sum(r["groups"] for r in rs)
        return sum(r["reward_mean"] * r["groups"] for r in rs) / weights

    return {"steps": len(records), "reward_first": round(mean_reward(records[:n]), 4),
            "reward_last": round(mean_reward(records[-n:]), 4),
            "groups_trained": sum(r["groups"] for r in records),
            "groups_dropped_stale": status.get("groups_dropped_stale", 0),
            # versions between generation and the learner, over every group received (dropped too)
            "max_version_lag": status.get("max_version_lag", max(r["staleness_max"] for r in records)),
            "max_staleness_trained": max(r["staleness_max"] for r in records), "wall_s": round(wall_s, 2)}


def run_local(cfg: RunConfig, out: Path, steps: int | None = None, progress: bool = True,
              resume: bool = False) -> dict:
    """Run a whole training job on this machine; return (and write) the summary.

    With `resume`, continue the run in `out`: the private Redis restarts from its append-only file
    in `out/redis` (or `queue.url` is the same Redis), the learner from its newest checkpoint."""
    from relayrl.rpc import TOKEN_ENV, auth_token, wait_ready

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    if not resume:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    steps = steps or cfg.learner.steps
    t0 = time.monotonic()
    model_dir = cfg.model.path
    if model_dir is None and resume and (out / "init-model" / "config.json").exists():
        model_dir = out / "init-model"  # the initial policy (the KL reference) of the run resumed
    elif model_dir is None:
        from relayrl.model.tiny import init_tiny

        model_dir = init_tiny(out / "init-model", cfg.model.tiny)
    if cfg.queue.type != "redis":
        raise ValueError("relayrl train runs separate processes: queue.type must be redis")
    config_path = out / "config.yaml"
    cfg.dump(config_path)
    # one token per run (unless the caller brought one): every gRPC call between the children
    # carries it, and OUT/auth-token (mode 0600) lets a person's tools call in too
    token = auth_token() or secrets.token_urlsafe(32)
    os.environ[TOKEN_ENV] = token
    token_file = out / "auth-token"
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n")
    procs = Processes(logs)
    py = [sys.executable, "-m", "relayrl.cli", "serve"]
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        redis_url = cfg.queue.url or start_redis(procs, out)
        endpoints = assign_endpoints(cfg, redis_url)
        (out / "endpoints.json").write_text(json.dumps(endpoints, indent=2) + "\n")
        grpc_of = {name: e["grpc"] for name, e in endpoints["services"].items()}
        reward_addr, learner_addr = grpc_of["reward"], grpc_of["learner"]

        def args(name: str) -> list[str]:
            e = endpoints["services"][name]
            return ["--config", str(config_path), "--redis", redis_url, "--port", e["grpc"].rsplit(":", 1)[1],
                    "--metrics-port", str(e["metrics_port"])]

        procs.start("reward", [*py, "reward", *args("reward")])
        procs.start("learner", [*py, "learner", *args("learner"), "--model", str(model_dir), "--out", str(out),
                                "--steps", str(steps), *(["--resume"] if resume else [])])
        for addr in (reward_addr, learner_addr):
            wait_ready(addr, timeout_s=120)
        nccl = cfg.learner.weights.nccl.port  # the actors pull over the broadcast fast path when it is on
        weights_addr = f"nccl://127.0.0.1:{nccl}" if nccl else learner_addr
        for i in range(cfg.rollout.num_actors):
            procs.start(f"actor-{i}", [*py, "actor", *args(f"actor-{i}"), "--model", str(model_dir),
                                       "--actor-id", f"actor-{i}", "--learner", weights_addr, "--reward", reward_addr])
        learner = next(c for c in procs.children if c.name == "learner")
        _watch(procs, learner, redis_url, learner_addr, cfg, steps, progress)
    finally:
        procs.stop()
        signal.signal(signal.SIGTERM, previous)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    status = json.loads((out / "learner-status.json").read_text()) if (out / "learner-status.json").exists() else {}
    summary = summarize(records, time.monotonic() - t0, status)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _watch(procs: Processes, learner: Child, redis_url: str, learner_addr: str, cfg: RunConfig, steps: int,
           progress: bool) -> None:
    """Wait for the learner to finish, showing progress; raise when any child dies first."""
    from relayrl.progress import RunMonitor

    with RunMonitor(redis_url, learner_addr, StreamKeys(cfg.run), steps, enabled=progress) as monitor:
        while True:
            dead = procs.failed()
            if dead is learner and learner.proc.returncode == 0:
                return
            if dead is not None:
                tail = dead.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{dead.name} exited with code {dead.proc.returncode}; log {dead.log}:\n{tail}")
            monitor.update()
            time.sleep(0.5)
