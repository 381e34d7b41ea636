"""Rejection sampling (R1's second SFT stage): a teacher's verified-correct samples train a student.

For every prompt the teacher samples k responses with the transformers engine; the math verifier
scores each against the prompt's gold answer, and exactly the ones it scores `pass` are kept —
`fail` and `infra_error` alike are dropped (an unjudged sample is never trusted as correct). Every
sample goes to OUT/samples.jsonl with its outcome (the audit trail), the kept ones to
OUT/sft.jsonl as {"prompt", "response"}, and, with a student, `sft.train.sft` fine-tunes it into
OUT/student. Prompts come from a shipped task's training stream or a JSONL of {"prompt", "answer"}.
"""

from __future__ import annotations

import json
from pathlib import Path

from relayrl.sft.train import SftOptions, read_jsonl, sft


def load_prompts(source: str, n: int, seed: int = 0) -> list[dict]:
    """`task:<name>` (the task's training stream, first n) or a JSONL file of {"prompt", "answer"}."""
    if source.startswith("task:"):
        from relayrl.config.task import ProceduralSource, TaskConfig
        from relayrl.tasks import MATH_TASKS, stream

        name = source.removeprefix("task:")
        if name not in MATH_TASKS:
            raise ValueError(f"unknown task {name!r}; shipped math tasks: {list(MATH_TASKS)}")
        it = stream(TaskConfig(source=ProceduralSource(name=name), seed=seed))
        return [{"prompt": t.prompt, "answer": t.answer} for t in (next(it) for _ in range(n))]
    return read_jsonl(source, ("prompt", "answer"), "prompts")[:n]


def collect(teacher_dir: str | Path, prompts: list[dict], k: int, max_new_tokens: int, temperature: float = 0.6,
            top_p: float = 0.95, seed: int = 0, batch_prompts: int = 8, threads: int = 1) -> list[dict]:
    """Every teacher sample as {"prompt", "answer", "response", "outcome", "reward"}, in prompt order."""
    from relayrl.config import RewardConfig, SamplingConfig
    from relayrl.reward.verifiers.math import MathVerifier
    from relayrl.rollout.engine import TransformersEngine

    engine = TransformersEngine(str(teacher_dir), threads=threads)
    sampling = SamplingConfig(group_size=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    verifier = MathVerifier(RewardConfig())
    samples = []
    try:
        for start in range(0, len(prompts), batch_prompts):
            batch = prompts[start:start + batch_prompts]
            groups = engine.generate([p["prompt"] for p in batch], sampling, seed=seed * 1_000_003 + start)
            for row, group in zip(batch, groups):
                for c in group:
                    score = verifier.score(c.text, row["answer"])
                    samples.append({"prompt": row["prompt"], "answer": row["answer"], "response": c.text,
                                    "outcome": score.outcome, "reward": score.reward})
    finally:
        verifier.close()
    return samples


def distill(teacher_dir: str | Path, prompts: list[dict], out: str | Path, k: int = 8, max_new_tokens: int = 512,
            temperature: float = 0.6, top_p: float = 0.95, seed: int = 0, batch_prompts: int = 8,
            student_dir: str | Path | None = None, options: SftOptions = SftOptions()) -> dict:
    """Collect, filter to `pass`, write OUT/samples.jsonl and OUT/sft.jsonl, and fine-tune the
    student (when given and something was kept) into OUT/student; returns a JSON-ready summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = collect(teacher_dir, prompts, k, max_new_tokens, temperature, top_p, seed, batch_prompts,
                      options.threads)
    kept = [{"prompt": s["prompt"], "response": s["response"]} for s in samples if s["outcome"] == "pass"]
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (out / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    summary = {"prompts": len(prompts), "samples": len(samples), "kept": len(kept),
               "prompts_with_a_kept_sample": len({r["prompt"] for r in kept}),
               "infra_errors": sum(s["outcome"] == "infra_error" for s in samples),
               "samples_path": str(out / "samples.jsonl"), "sft_path": str(out / "sft.jsonl"), "student": None}
    if student_dir is not None:
        if not kept:
            summary["reason"] = "no teacher sample passed the verifier: nothing to fine-tune the student on"
            return summary
        result = sft(student_dir, kept, out / "student", options)
        summary["student"] = result["out"]
        summary["sft"] = {key: value for key, value in result.items() if key != "losses"}
    return summary
