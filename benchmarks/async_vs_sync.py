"""Groups trained per minute, asynchronous vs synchronous, under SWE-like reward latency.

The same run configuration (the quickstart's tiny model and task, every service its own process
via `relayrl train`) is run twice for the same wall-clock budget: `mode: async` (generation,
rewards and training overlap under the staleness bound) and `mode: sync` (lock-step: generate a
batch, wait for every reward, train). Rewards go through the real slow lane (Redis stream, reward
workers leasing and renewing jobs) with an EMULATED latency (`reward.slow_lane.emulate_latency`):
a lognormal delay per sample with a median of `--median-s` and a p99 of `--p99-s`, standing in
for minutes-long SWE test runs; the reward itself is the math verifier's.

Counted from the learner's metrics.jsonl, over the steps finished within the budget (measured
from the learner's first published version): groups trained per minute, and the learner's busy
fraction (time in optimizer steps / budget). Prints one JSON line at the end.

    .venv/bin/python benchmarks/async_vs_sync.py --budget-s 300
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import yaml

ROOT = Path(__file__).resolve().parents[1]


def config(mode: str, args) -> dict:
    cfg = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    cfg["run"] = f"bench-{mode}"
    cfg["mode"] = mode
    cfg["rollout"]["num_actors"] = args.actors
    cfg["rollout"]["prompts_per_batch"] = 4
    cfg["rollout"]["sampling"]["group_size"] = args.group_size
    cfg["learner"].update(batch_groups=args.batch, max_staleness=args.max_staleness, steps=100_000,
                          checkpoint={"every": 100_000})
    cfg["reward"]["slow_lane"] = {
        "kinds": ["math"], "service_workers": 1, "concurrency": 1024, "lease_s": 30, "poll_s": 0.5,
        "emulate_latency": {"median_s": args.median_s, "p99_s": args.p99_s, "max_s": 600, "seed": args.seed}}
    cfg["reward"]["lanes"] = {"math": {"max_pending": 100_000}}
    return cfg


def run_arm(mode: str, args, work: Path) -> dict:
    out = work / mode
    out.mkdir(parents=True)
    path = out / "bench.yaml"
    path.write_text(yaml.safe_dump(config(mode, args)))
    proc = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "train", str(path), "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=open(out / "train.err", "wb"))
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
    finally:
        proc.send_signal(signal.SIGTERM)  # the launcher stops every child it started
        proc.wait(timeout=60)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    done = [r for r in records if r["wall_s"] <= args.budget_s]
    groups = sum(r["groups"] for r in done)
    return {"steps": len(done), "groups_trained": groups,
            "groups_per_min": round(groups * 60 / args.budget_s, 2),
            "busy_fraction": round(sum(r["train_s"] for r in done) / args.budget_s, 4),
            "max_staleness_trained": max((r["staleness_max"] for r in done), default=None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=300.0, help="Wall-clock budget of each arm.")
    parser.add_argument("--median-s", type=float, default=3.0, help="Median emulated reward latency.")
    parser.add_argument("--p99-s", type=float, default=75.0, help="99th percentile of the emulated latency.")
    parser.add_argument("--batch", type=int, default=8, help="Groups per optimizer step.")
    parser.add_argument("--group-size", type=int, default=4, help="Completions per prompt.")
    parser.add_argument("--max-staleness", type=int, default=2, help="Staleness bound of the async arm.")
    parser.add_argument("--actors", type=int, default=2, help="Rollout actor processes.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the emulated latencies.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relayrl-bench-") as tmp:
        arms = {mode: run_arm(mode, args, Path(tmp)) for mode in ("sync", "async")}
        for mode, arm in arms.items():
            print(f"{mode:5s} {arm['groups_per_min']:8.2f} groups/min  busy {arm['busy_fraction']:.4f}  "
                  f"({arm['steps']} steps)", file=sys.stderr)
    ratio = arms["async"]["groups_per_min"] / max(arms["sync"]["groups_per_min"], 1e-9)
    print(json.dumps({"budget_s": args.budget_s, "latency": {"median_s": args.median_s, "p99_s": args.p99_s},
                      "batch_groups": args.batch, "group_size": args.group_size,
                      "max_staleness": args.max_staleness, **arms, "ratio": round(ratio, 2)}))


if __name__ == "__main__":
    main()
