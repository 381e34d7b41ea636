"""The single-machine launcher behind `relayrl train`: every service its own OS process.

It starts a private redis-server, the reward service, the learner, N actors and (with
`eval.every_steps`) the evaluator as child processes talking gRPC on loopback, the same code
paths as a cluster. Each child gets PR_SET_PDEATHSIG, so it dies with the launcher even on
SIGKILL; on Ctrl-C, on the learner's end, or when any child dies, every child is stopped
(SIGTERM, then SIGKILL) and none is left behind.
Progress (step, reward, version, queue depths) comes from the learner's status RPC and Redis.
Every run gets its own auth token (rpc.py), handed to the children in their environment.

A first hour's mistakes stop at once with one line (`preflight.StartupError`), before any process
starts: an unwritable `--out`, a model or dataset that does not exist, a Redis that does not
answer. A folder that holds a run is continued when the config is the same (restart is resume:
the private Redis reopens its append-only file, the learner its newest checkpoint) and refused
when it is not; `fresh` refuses any folder that holds a run. A child that dies while the others
start is reported at once, with the last line of its log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from relayrl import preflight
from relayrl.config import ConfigError, RunConfig
from relayrl.lifetime import die_with_parent
from relayrl.preflight import StartupError
from relayrl.replay.keys import StreamKeys
from relayrl.replay.private_redis import free_port, redis_command, wait_port


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
                                    env=env, preexec_fn=die_with_parent)
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
    child = procs.start("redis", redis_command(port, out / "redis"))
    try:
        wait_port(port, proc=child.proc)
    except RuntimeError:
        raise RuntimeError(f"redis exited during start-up: {last_error_line(child.log)} (log: {child.log})") from None
    return f"redis://127.0.0.1:{port}/0"


_ERROR_START = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)|config error|error)\b")


def last_error_line(log: Path, limit: int = 400) -> str:
    """What a child's log says about why it died, as one line: its last exception (a message of
    several lines joined), else its last line with text in it; never a frame of a boxed rich
    traceback."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 20_000))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    text = [line.strip() for line in lines if line.strip().strip("│╭╮╰╯─ ")]
    if not text:
        return "(empty log)"
    start = next((i for i in range(len(text) - 1, -1, -1) if _ERROR_START.match(text[i])), len(text) - 1)
    message = " ".join(text[start:])
    return message if len(message) <= limit else message[:limit - 1] + "…"


def wait_serving(procs: Processes, child: Child, address: str, timeout_s: float = 300.0) -> None:
    """Block until `child` answers its health check at `address`; raise at once, with the last
    line of its log, when it (or any other child) exits first."""
    from relayrl.rpc import wait_ready

    deadline = time.monotonic() + timeout_s
    while True:
        if child.proc.poll() == 0:
            return  # done already (a learner resumed at its last step)
        dead = next((c for c in procs.children if c.proc.poll() not in (None, 0)), None)
        if dead is not None:
            raise RuntimeError(f"{dead.name} exited during start-up with code {dead.proc.returncode}: "
                               f"{last_error_line(dead.log)} (log: {dead.log})")
        try:
            wait_ready(address, timeout_s=1.0)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} is not serving on {address} after {timeout_s:.0f} s; its log: "
                                   f"{child.log}") from None


def check_before_start(cfg: RunConfig) -> None:
    """What can be checked before anything starts: the queue backend, the model, the task, Redis."""
    if cfg.queue.type != "redis":
        raise StartupError("queue.type: `relayrl train` runs every service as its own process, so the queue "
                           "must be type: redis")
    if cfg.learner.weights.nccl.port == 0:  # the actors would not know which port the learner took
        raise StartupError("learner.weights.nccl.port: 0 (any free port) is for `relayrl serve learner`; "
                           "`relayrl train` points its actors at the port: set a fixed one")
    preflight.model_dir(cfg.model.path, "model.path")
    preflight.task_source(cfg.task, cfg.reward.code)
    preflight.redis_answers(cfg.queue.url, "queue.url")
    from relayrl.tracking import MissingExtra, require

    try:
        require(cfg.tracking.backends)
    except MissingExtra as exc:  # a missing tracker package: one line now, not a learner dying later
        raise StartupError(f"tracking: {exc}") from None


def holds_run(cfg: RunConfig, out: Path, fresh: bool) -> bool:
    """True when `out` holds a run to continue (written with this same config). A run written with
    another config, or any run under `fresh`, is a StartupError: one line naming the way out."""
    previous = out / "config.yaml"
    if not previous.exists():
        return False
    if fresh:
        raise StartupError(f"{out} holds a run already and --fresh refuses to start over it: pass a new --out "
                           "(or leave out --fresh to continue it)")
    try:
        old = RunConfig.load(previous)
    except ConfigError as exc:
        raise StartupError(f"{out} holds a run whose config no longer loads ({exc.problems[0]}): pass a new "
                           "--out") from None
    if changed := config_changes(old, cfg):
        raise StartupError(f"{out} holds a run with another config ({'; '.join(changed[:3])}): pass a new --out "
                           "to start another run, or the run's own config to continue it")
    return True


def config_changes(old: RunConfig, new: RunConfig) -> list[str]:
    """`key: old -> new` for every key whose value differs (dotted paths)."""
    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, sub in value.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    a, b = flat(old.model_dump(mode="json")), flat(new.model_dump(mode="json"))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


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
              resume: bool = False, fresh: bool = False) -> dict:
    """Run a whole training job on this machine; return (and write) the summary.

    When `out` holds a run of the same config it is continued (so is it with `resume`, kept for old
    command lines): the private Redis restarts from its append-only file in `out/redis` (or
    `queue.url` is the same Redis), the learner from its newest checkpoint. `fresh` refuses an
    `out` that holds a run. Progress goes to stderr, and only when it is a terminal."""
    out = preflight.writable_dir(Path(out), "--out")
    lock = _lock(out)  # held until this process exits: one launcher per folder
    continuing = holds_run(cfg, out, fresh)
    check_before_start(cfg)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    resume = continuing or resume
    if continuing:
        print(f"continuing the run in {out} (a new --out starts another)", file=sys.stderr)
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
    from relayrl.rpc import TOKEN_ENV, auth_token

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
        endpoints = {**assign_endpoints(cfg, redis_url), "steps": steps}  # `relayrl status` shows step / steps
        (out / "endpoints.json").write_text(json.dumps(endpoints, indent=2) + "\n")
        grpc_of = {name: e["grpc"] for name, e in endpoints["services"].items()}
        reward_addr, learner_addr = grpc_of["reward"], grpc_of["learner"]

        def args(name: str) -> list[str]:
            e = endpoints["services"][name]
            return ["--config", str(config_path), "--redis", redis_url, "--port", e["grpc"].rsplit(":", 1)[1],
                    "--metrics-port", str(e["metrics_port"])]

        reward = procs.start("reward", [*py, "reward", *args("reward")])
        # no flag: the learner continues the newest checkpoint in OUT when there is one
        learner = procs.start("learner", [*py, "learner", *args("learner"), "--model", str(model_dir),
                                          "--out", str(out), "--steps", str(steps)])
        if cfg.eval.every_steps:  # its start-up overlaps the others'; it waits for versions by itself
            procs.start("evaluator", [*py, "evaluator", "--config", str(config_path), "--redis", redis_url,
                                      "--learner", learner_addr, "--model", str(model_dir), "--steps", str(steps)])
        wait_serving(procs, reward, reward_addr)
        wait_serving(procs, learner, learner_addr)
        nccl = cfg.learner.weights.nccl.port  # the actors pull over the broadcast fast path when it is on
        weights_addr = f"nccl://127.0.0.1:{nccl}" if nccl is not None else learner_addr
        for i in range(cfg.rollout.num_actors):
            procs.start(f"actor-{i}", [*py, "actor", *args(f"actor-{i}"), "--model", str(model_dir),
                                       "--actor-id", f"actor-{i}", "--learner", weights_addr, "--reward", reward_addr])
        _watch(procs, learner, redis_url, learner_addr, cfg, steps, progress and sys.stderr.isatty())
    finally:
        procs.stop()
        signal.signal(signal.SIGTERM, previous)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    status = json.loads((out / "learner-status.json").read_text()) if (out / "learner-status.json").exists() else {}
    summary = summarize(records, time.monotonic() - t0, status)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lock.close()
    return summary


def _lock(out: Path):
    """An exclusive lock on OUT/launcher.lock, or a StartupError when another launcher holds it."""
    import fcntl

    fh = open(out / "launcher.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise StartupError(f"{out} is in use by another `relayrl train` (pid {holder}): wait for it to end, or pass "
                           "a new --out") from None
    fh.truncate(0)
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


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
                raise RuntimeError(f"{dead.name} exited with code {dead.proc.returncode}: {last_error_line(dead.log)} "
                                   f"(log: {dead.log})")
            monitor.update()
            time.sleep(0.5)
