"""Groups trained per minute, asynchronous vs synchronous, under SWE-like reward latency.

The same run configuration, every service its own process via `relayrl train`, is run twice for
the same wall-clock budget: `mode: async` (generation, rewards and training overlap under the
staleness bound) and `mode: sync` (lock-step: generate a batch, wait for every reward, train).
Rewards go through the real slow lane (Redis stream, reward workers leasing and renewing jobs).

- Default (emulated): the quickstart's tiny model and task, with an EMULATED latency
  (`reward.slow_lane.emulate_latency`): a lognormal delay per sample with a median of
  `--median-s` and a p99 of `--p99-s`, standing in for SWE test runs; the reward is math-verify's.
- `--real-swe`: no emulation. `configs/swe-mini.yaml`'s policy (the tiny model, cold-started by
  `scripts/swe_cold_start.py` to write a diff that applies to any task, built once for both arms)
  on the tasks of `examples/swe-slow`, whose real test suites take 5-60 s: every reward is a real
  test run in the sandbox. Also reported: the reward latency distribution (from a job's enqueueing
  to its result, and the sandbox time), test runs, stale drops and regenerations, read from the
  run's Redis and the learner's metrics before each arm is stopped.

Counted from the learner's metrics.jsonl, over the steps finished within the budget (measured
from the learner's first published version): groups trained per minute, and the learner's busy
fraction (time in optimizer steps / budget). Both arms use the same seeds. Prints one JSON line.

    .venv/bin/python benchmarks/async_vs_sync.py --budget-s 300
    .venv/bin/python benchmarks/async_vs_sync.py --real-swe --budget-s 300
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
import yaml

ROOT = Path(__file__).resolve().parents[1]
SWE_CONFIG = ROOT / "configs" / "swe-mini.yaml"
SLOW_TASKS = ROOT / "examples" / "swe-slow" / "manifest.jsonl"


def config(mode: str, args) -> dict:
    """The emulated arm: the quickstart with an emulated slow lane."""
    cfg = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    cfg["rollout"]["num_actors"] = args.actors
    cfg["rollout"]["prompts_per_batch"] = 4
    cfg["reward"]["slow_lane"] = {
        "kinds": ["math"], "service_workers": 1, "concurrency": 1024, "lease_s": 30, "poll_s": 0.5,
        "emulate_latency": {"median_s": args.median_s, "p99_s": args.p99_s, "max_s": 600, "seed": args.seed}}
    cfg["reward"]["lanes"] = {"math": {"max_pending": 100_000}}
    return arm(cfg, mode, args)


def real_swe_config(mode: str, args, model: Path | None) -> dict:
    """The real-SWE arm: swe-mini's policy on the slow tasks, every job a real test run."""
    cfg = yaml.safe_load(SWE_CONFIG.read_text())
    cfg["model"]["path"] = str(model) if model else None
    cfg["task"]["source"]["path"] = str(SLOW_TASKS)
    cfg["rollout"]["num_actors"] = args.actors
    cfg["rollout"]["prompts_per_batch"] = args.batch
    concurrency = 2 * (args.max_staleness + 1) * args.batch * args.group_size  # every sample in flight at once
    cfg["reward"]["swe"]["concurrency"] = concurrency
    cfg["reward"]["slow_lane"].update(concurrency=concurrency, service_workers=1)
    return arm(cfg, mode, args)


def arm(cfg: dict, mode: str, args) -> dict:
    cfg["run"] = f"bench-{mode}"
    cfg["mode"] = mode
    cfg["task"]["seed"] = args.seed
    cfg["rollout"]["sampling"]["group_size"] = args.group_size
    cfg["learner"].update(batch_groups=args.batch, max_staleness=args.max_staleness, steps=100_000,
                          checkpoint={"every": 100_000})
    return cfg


def scrape(port: int, name: str, labels: str = "") -> float:
    """A counter's value from a process's /metrics (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else [values[0]] * 9
    return {"n": len(values), "p10": round(q[0], 2), "p50": round(statistics.median(values), 2),
            "p90": round(q[8], 2), "max": round(max(values), 2)}


def swe_figures(client: redis.Redis, run: str, endpoints: dict, group_size: int) -> dict:
    """What the real-SWE arm reports beside throughput, read while the run is still up."""
    prefix = f"relayrl:{run}"
    enqueued = {json.loads(f[b"d"])["job_id"]: int(i.split(b"-")[0]) for i, f in client.xrange(f"{prefix}:swe")}
    waits, sandbox, runs, groups = [], [], 0, {}
    for entry_id, fields in client.xrange(f"{prefix}:swe-results"):
        result = json.loads(fields[b"d"])
        details = result["score"]["details"]
        runs += isinstance(details.get("exit_code"), int)
        sandbox.append(details.get("sandbox_s", 0.0))
        if result["job_id"] in enqueued:
            done, started = int(entry_id.split(b"-")[0]), enqueued[result["job_id"]]
            waits.append((done - started) / 1000)
            first, last, n = groups.get(result["group_id"], (started, done, 0))
            groups[result["group_id"]] = (min(first, started), max(last, done), n + 1)
    # a complete group's wait for its rewards: from its first job's enqueueing to its last result
    group_waits = [(last - first) / 1000 for first, last, n in groups.values() if n == group_size]
    learner = endpoints["services"]["learner"]["metrics_port"]
    return {"jobs": len(enqueued), "test_runs": runs, "results": len(waits),
            "reward_latency_s": quantiles(waits), "group_reward_latency_s": quantiles(group_waits),
            "sandbox_s": quantiles(sandbox),
            "stale_drops": int(scrape(learner, "relayrl_groups_dropped_total", '{reason="stale"}')),
            "regenerations": int(client.get(f"{prefix}:regenerations") or 0)}


def run_arm(mode: str, args, work: Path, model: Path | None) -> dict:
    out = work / mode
    out.mkdir(parents=True)
    path = out / "bench.yaml"
    cfg = real_swe_config(mode, args, model) if args.real_swe else config(mode, args)
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "train", str(path), "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=open(out / "train.err", "wb"), cwd=ROOT)
    extra = {}
    try:
        deadline = time.monotonic() + 300
        while not (out / "endpoints.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{mode}: relayrl train did not start; see {out}")
            time.sleep(0.2)
        endpoints = json.loads((out / "endpoints.json").read_text())
        client = redis.Redis.from_url(endpoints["redis"])
        while client.get(f"relayrl:bench-{mode}:version") is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{mode}: the learner did not start; see {out}/logs")
            time.sleep(0.2)
        time.sleep(args.budget_s + 2)
        if args.real_swe:
            extra = swe_figures(client, f"bench-{mode}", endpoints, args.group_size)
    finally:
        proc.send_signal(signal.SIGTERM)  # the launcher stops every child it started
        proc.wait(timeout=60)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    done = [r for r in records if r["wall_s"] <= args.budget_s]
    groups = sum(r["groups"] for r in done)
    return {"steps": len(done), "groups_trained": groups,
            "groups_per_min": round(groups * 60 / args.budget_s, 2),
            "busy_fraction": round(sum(r["train_s"] for r in done) / args.budget_s, 4),
            "max_staleness_trained": max((r["staleness_max"] for r in done), default=None), **extra}


def cold_start(args, work: Path) -> Path:
    """The swe-mini policy cold-started on the slow tasks' prompts, once for both arms."""
    path = work / "cold-start.yaml"
    path.write_text(yaml.safe_dump(real_swe_config("async", args, None)))
    model = work / "model"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "swe_cold_start.py"), str(path), str(model),
                    "--seed", str(args.seed)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-swe", action="store_true", help="Real SWE test runs (examples/swe-slow), no emulation.")
    parser.add_argument("--budget-s", type=float, default=300.0, help="Wall-clock budget of each arm.")
    parser.add_argument("--median-s", type=float, default=3.0, help="Median emulated reward latency.")
    parser.add_argument("--p99-s", type=float, default=75.0, help="99th percentile of the emulated latency.")
    parser.add_argument("--batch", type=int, default=None, help="Groups per optimizer step (default 8; real SWE 4).")
    parser.add_argument("--group-size", type=int, default=None, help="Completions per prompt (default 4; real SWE 2).")
    parser.add_argument("--max-staleness", type=int, default=2, help="Staleness bound of the async arm.")
    parser.add_argument("--actors", type=int, default=None, help="Rollout actor processes (default 2; real SWE 1).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the tasks' order and of the emulated latencies.")
    args = parser.parse_args()
    for name, emulated, real in (("batch", 8, 4), ("group_size", 4, 2), ("actors", 2, 1)):
        if getattr(args, name) is None:
            setattr(args, name, real if args.real_swe else emulated)
    with tempfile.TemporaryDirectory(prefix="relayrl-bench-") as tmp:
        model = cold_start(args, Path(tmp)) if args.real_swe else None
        arms = {mode: run_arm(mode, args, Path(tmp), model) for mode in ("sync", "async")}
        for mode, result in arms.items():
            print(f"{mode:5s} {result['groups_per_min']:8.2f} groups/min  busy {result['busy_fraction']:.4f}  "
                  f"({result['steps']} steps)", file=sys.stderr)
    ratio = arms["async"]["groups_per_min"] / max(arms["sync"]["groups_per_min"], 1e-9)
    latency = ({"real_swe": str(SLOW_TASKS.relative_to(ROOT))} if args.real_swe
               else {"median_s": args.median_s, "p99_s": args.p99_s})
    print(json.dumps({"budget_s": args.budget_s, "latency": latency, "batch_groups": args.batch,
                      "group_size": args.group_size, "max_staleness": args.max_staleness, **arms,
                      "ratio": round(ratio, 2)}))


if __name__ == "__main__":
    main()
