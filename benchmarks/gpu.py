"""One GPU, end to end: SmolLM2-135M trained by relayrl with the learner on CUDA under FSDP2 (bf16
mixed precision), vLLM actors on CUDA, and weights over the NCCL fast path; held-out pass@1
before and after. `benchmarks/gpu.sh` installs what this needs and calls it.

    .venv-gpu/bin/python benchmarks/gpu.py --model models/smollm2-135m-instruct [--steps 60] [--out DIR]
    .venv/bin/python benchmarks/gpu.py --dry-run          # the same entrypoints on the CPU, tiny settings

Steps: write the run config (validated by `RunConfig`), evaluate the initial model on the task's
held-out stream (a subprocess: `gpu.py eval`, vLLM on the GPU), train with `relayrl train` (every
service its own process: reward service, learner, actor), evaluate the final checkpoint, and print
one JSON line: learner tokens/s (completion tokens trained per second of update), rollout tokens/s
(completion tokens of the trained groups per second of training wall time), NCCL weight-sync
seconds per version (the actors' fetch + load, from their logs), the learner's peak memory, and
pass@1 before/after. `--dry-run` swaps in the tiny model, the transformers engine, the CPU learner
(FSDP2 over gloo, one rank) and the gloo pair groups, for a few steps: what can be tested without a GPU.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARITHMETIC = {"source": {"type": "reasoning_gym", "dataset": "basic_arithmetic",
                         "options": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2,
                                     "operators": ["+", "-"], "allow_parentheses": False, "allow_negation": False}},
              "seed": 0, "chat": True,
              "system": "Think inside <think> </think>, then give the final number inside <answer> </answer>.",
              "examples": [{"question": "Calculate 12 + 7.",
                            "response": "<think> 12 + 7 = 19 </think> <answer> 19 </answer>"}]}


def make_config(dry_run: bool, model: Path | None, steps: int, nccl_port: int) -> dict:
    """The run config as a dict: SmolLM2 on arithmetic on one GPU, or the tiny CPU stand-in."""
    if dry_run:
        return {
            "run": "gpu-dry-run", "model": {"path": None, "tiny": {"max_position_embeddings": 64}},
            "task": {"source": {"type": "procedural", "name": "most_frequent_digit", "num_digits": 5}, "seed": 0},
            "queue": {"type": "redis"},
            "rollout": {"num_actors": 1, "prompts_per_batch": 4, "engine": {"type": "transformers"},
                        "sampling": {"group_size": 4, "max_new_tokens": 4}},
            "reward": {"weights": {"accuracy": 1.0, "format": 0.0}, "workers": 1},
            "learner": {"batch_groups": 4, "steps": steps, "device": "cpu", "precision": "bf16",
                        "fsdp": {"enabled": True}, "micro_batch_tokens": 64,
                        "weights": {"wire_dtype": "bfloat16", "nccl": {"port": nccl_port, "backend": "gloo"}},
                        "checkpoint": {"every": 1000}}}
    return {
        "run": "gpu", "model": {"path": str(model)}, "task": ARITHMETIC, "queue": {"type": "redis"},
        "rollout": {"num_actors": 1, "prompts_per_batch": 16,
                    "engine": {"type": "vllm", "dtype": "bfloat16", "gpu_memory_utilization": 0.3,
                               "max_model_len": 1024, "enforce_eager": True},
                    "sampling": {"group_size": 8, "max_new_tokens": 64, "temperature": 1.0}},
        "reward": {"weights": {"accuracy": 1.0, "format": 0.5}, "workers": 4},
        "learner": {"batch_groups": 16, "max_staleness": 1, "steps": steps, "device": "cuda", "precision": "bf16",
                    "fsdp": {"enabled": True}, "micro_batch_tokens": 16384, "optim": {"lr": 5e-6},
                    "weights": {"wire_dtype": "bfloat16", "nccl": {"port": nccl_port, "backend": "nccl"}},
                    "checkpoint": {"every": 1000}}}


def evaluate(model: Path, config: Path, n: int, k: int, engine: str) -> dict:
    """Held-out pass@1 / format of `model` on the config's task (in this process)."""
    from relayrl.config import RewardConfig, RunConfig, VllmEngineConfig
    from relayrl.evaluation.datasets import load
    from relayrl.evaluation.runner import renderer, run_dataset
    from relayrl.reward.verifiers.math import MathVerifier

    cfg = RunConfig.load(config)
    if engine == "vllm":
        from relayrl.rollout.vllm_engine import VllmEngine

        eng = VllmEngine(str(model), VllmEngineConfig(dtype="bfloat16", gpu_memory_utilization=0.3, max_model_len=1024))
    else:
        from relayrl.rollout.engine import TransformersEngine

        eng = TransformersEngine(str(model))
    verifier = MathVerifier(RewardConfig())
    try:
        dataset = load("task", n, 0, verifier, task=cfg.task)
        return run_dataset(eng, dataset, k, cfg.rollout.sampling.max_new_tokens, 0.6, 0.95, 0, 64,
                           renderer("task", eng.tokenizer, cfg.task.chat, cfg.task))
    finally:
        verifier.close()


def _eval_subprocess(model: Path, config: Path, args) -> dict:
    """`evaluate` in its own process (vLLM frees the GPU when the process ends)."""
    cmd = [sys.executable, __file__, "eval", "--model", str(model), "--config", str(config), "--n", str(args.n),
           "--k", str(args.k), "--engine", "transformers" if args.dry_run else "vllm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"evaluation of {model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def figures(out: Path, before: dict, after: dict) -> dict:
    """The run's figures from its metrics.jsonl, actor logs and summary."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((out / "summary.json").read_text())
    syncs = [float(s) for log in (out / "logs").glob("actor-*.log")
             for s in re.findall(r"loaded version \d+ in ([0-9.]+) s", log.read_text())]
    kind = "peak_cuda_memory_gb" if "peak_cuda_memory_gb" in records[-1] else "peak_rss_gb"
    peak = max(r.get(kind, 0.0) for r in records)
    tokens = sum(r["tokens"] for r in records)
    return {
        "benchmark": "gpu", "steps": len(records), "wall_s": summary["wall_s"],
        "learner_tokens_per_s": round(tokens / max(sum(r["update_s"] for r in records), 1e-9), 1),
        "rollout_tokens_per_s": round(tokens / max(records[-1]["wall_s"], 1e-9), 1),
        "weight_sync_s_per_version": round(statistics.median(syncs), 4) if syncs else None,
        "weight_syncs": len(syncs), f"learner_{kind}": round(peak, 3),
        "reward_first": summary["reward_first"], "reward_last": summary["reward_last"],
        "heldout_pass1_before": round(before["pass@1"], 4), "heldout_pass1_after": round(after["pass@1"], 4),
        "heldout_format_before": round(before["format"], 4), "heldout_format_after": round(after["format"], 4),
        "heldout_n": before["n"]}


def run(args) -> dict:
    from relayrl.config import RunConfig
    from relayrl.replay.private_redis import free_port

    if not args.dry_run and args.model is None:
        raise SystemExit("gpu.py: --model DIR is required (or --dry-run); gpu.sh imports SmolLM2 into models/")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    steps = args.steps or (3 if args.dry_run else 60)
    config = out / "config.yaml"
    cfg = RunConfig.parse(make_config(args.dry_run, args.model, steps, free_port()))  # ConfigError when invalid
    cfg.dump(config)
    run_dir = out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a new run each time (its config has a new nccl port)
    model = args.model
    if args.dry_run:  # the launcher builds the tiny model into run/init-model; build it first to evaluate it
        from relayrl.model.tiny import init_tiny

        model = init_tiny(run_dir / "init-model", cfg.model.tiny)
    before = _eval_subprocess(model, config, args)
    subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(config), "--out", str(run_dir), "--quiet"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    final = run_dir / "checkpoints" / f"step-{steps:06d}"
    after = _eval_subprocess(final, config, args)
    return figures(run_dir, before, after)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:
        parser = argparse.ArgumentParser(prog="gpu.py eval")
        parser.add_argument("--model", type=Path, required=True)
        parser.add_argument("--config", type=Path, required=True)
        parser.add_argument("--n", type=int, default=200)
        parser.add_argument("--k", type=int, default=4)
        parser.add_argument("--engine", choices=["vllm", "transformers"], default="vllm")
        a = parser.parse_args(argv[1:])
        print(json.dumps(evaluate(a.model, a.config, a.n, a.k, a.engine)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU: the same entrypoints")
    parser.add_argument("--model", type=Path, default=None, help="the SmolLM2 directory (gpu.sh imports it)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default 60; dry run 3)")
    parser.add_argument("--n", type=int, default=200, help="held-out problems")
    parser.add_argument("--k", type=int, default=4, help="samples per held-out problem")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
