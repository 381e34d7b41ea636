"""The quickstart as a measured run: reward curve and wall time of `relayrl train` on this machine.

Runs configs/quickstart.yaml through the real launcher (every service its own process, a private
Redis, gRPC on loopback), then prints the mean reward of each tenth of the steps and, last, one
JSON line. The baseline is in the same run: `reward_first` is the untrained model's reward (the
groups of the first 10% of steps).

    .venv/bin/python benchmarks/quickstart.py [--steps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the config's)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="relayrl-quickstart-"))
    cmd = [sys.executable, "-m", "relayrl.cli", "train", str(args.config), "--out", str(out), "--quiet"]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    tenth = max(1, len(records) // 10)
    curve = []
    print(f"{'steps':>11}  {'reward':>6}  {'entropy':>7}  {'length':>6}  {'wall_s':>7}")
    for i in range(0, len(records), tenth):
        chunk = records[i:i + tenth]
        reward = sum(r["reward_mean"] for r in chunk) / len(chunk)
        entropy = sum(r["entropy"] for r in chunk) / len(chunk)
        length = sum(r["response_length_mean"] for r in chunk) / len(chunk)
        curve.append(round(reward, 4))
        steps = f"{chunk[0]['step']:>5}-{chunk[-1]['step']:<5}"
        print(f"{steps}  {reward:6.3f}  {entropy:7.2f}  {length:6.2f}  {chunk[-1]['wall_s']:7.1f}")
    print(json.dumps({**summary, "reward_gain": round(summary["reward_last"] - summary["reward_first"], 4),
                      "curve": curve, "out": str(out)}))


if __name__ == "__main__":
    main()
