"""Evaluation during training: what it costs the training step rate, and what it shows.

Runs configs/quickstart.yaml through the real launcher with `eval.every_steps` set (the evaluator
process beside the learner, the actors and the reward service) and, in the same invocation, the
same run without evaluation: the baseline. Repetitions alternate the order (off, on, on, off, ...)
so a drift in the machine's load hits both sides alike. The step rate is the learner's steps per
second from step `--skip` to the last step (metrics.jsonl's wall clock), which leaves out the
start-up and the learner's final wait for the last evaluation. On a CPU shared with other work the
rate moves with that work's load, so two figures that do not are reported beside it: the CPU
seconds of the whole run (every process, from `getrusage` of the launcher's waited-for
descendants), the evaluator's CPU seconds per evaluation (`cpu_s` in eval.jsonl) and in all (its
log's last line: start-up, evaluations and idle polling). Prints
each run, then one JSON line: the median rates and CPU seconds, the drops in percent, and the
held-out pass@1 points of the runs with evaluation.

    .venv/bin/python benchmarks/eval_overhead.py [--reps 2] [--steps 300] [--every 50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(config: dict, out: Path, steps: int) -> float:
    """Train; the CPU seconds every process of the run used."""
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    before = cpu_of_children()
    subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(path), "--out", str(out), "--steps", str(steps),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return cpu_of_children() - before


def measure(out: Path, skip: int) -> dict:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = records[skip - 1], records[-1]
    rate = (last["step"] - first["step"]) / (last["wall_s"] - first["wall_s"])
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()] if (out / "eval.jsonl").exists() else []
    n = max(1, len(records) // 10)
    return {"steps_per_s": round(rate, 3), "reward_first": round(sum(r["reward_mean"] for r in records[:n]) / n, 4),
            "reward_last": round(sum(r["reward_mean"] for r in records[-n:]) / n, 4),
            "eval": [(e["version"], round(e["pass@1"], 4)) for e in evals if e["dataset"] == "task"],
            "eval_cpu_s": round(sum(e.get("cpu_s", 0.0) for e in evals), 2), "evaluator_cpu_s": evaluator_cpu(out),
            "eval_wall_s": round(sum(e["eval_s"] for e in evals), 2)}


def evaluator_cpu(out: Path) -> float | None:
    """The CPU seconds the evaluator process used in all, from its log (None: no evaluator)."""
    log = out / "logs" / "evaluator.log"
    found = re.findall(r"used ([0-9.]+) CPU s in all", log.read_text()) if log.exists() else []
    return float(found[-1]) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2, help="pairs of runs (with and without evaluation)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50, help="eval.every_steps of the runs with evaluation")
    parser.add_argument("--skip", type=int, default=10, help="steps of start-up left out of the rate")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    base.pop("eval", None)
    work = args.keep or Path(tempfile.mkdtemp(prefix="relayrl-eval-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    order = [flag for rep in range(args.reps) for flag in ((False, True) if rep % 2 == 0 else (True, False))]
    results: dict[bool, list[dict]] = {False: [], True: []}
    for i, with_eval in enumerate(order):
        config = {**base, **({"eval": {"every_steps": args.every}} if with_eval else {})}
        out = work / f"{i}-{'eval' if with_eval else 'baseline'}"
        cpu_s = run(config, out, args.steps)
        figures = {"run": out.name, **measure(out, args.skip), "run_cpu_s": round(cpu_s, 1)}
        results[with_eval].append(figures)
        print(json.dumps(figures), flush=True)
    off = statistics.median(r["steps_per_s"] for r in results[False])
    on = statistics.median(r["steps_per_s"] for r in results[True])
    points = [r["eval"] for r in results[True]]
    cpu_off = statistics.median(r["run_cpu_s"] for r in results[False])
    cpu_on = statistics.median(r["run_cpu_s"] for r in results[True])
    print(json.dumps({"steps_per_s_without_eval": round(off, 3), "steps_per_s_with_eval": round(on, 3),
                      "drop_pct": round(100 * (off - on) / off, 1), "run_cpu_s_without_eval": round(cpu_off, 1),
                      "run_cpu_s_with_eval": round(cpu_on, 1), "cpu_added_pct": round(100 * (cpu_on - cpu_off) / cpu_off, 1),
                      "eval_cpu_s": [r["eval_cpu_s"] for r in results[True]],
                      "evaluator_cpu_s": [r["evaluator_cpu_s"] for r in results[True]], "eval_points": [len(p) for p in points],
                      "pass_at_1": points, "reps": args.reps, "steps": args.steps, "every_steps": args.every,
                      "out": str(work)}))


if __name__ == "__main__":
    main()
