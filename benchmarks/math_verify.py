"""Math verification throughput through `MathVerifier` (2 worker processes, driven from 4 threads
as the reward service drives it): integer answers (the parent's exact fast path), LaTeX answers
(math-verify in the workers under their CPU budget), and realistic R1 responses: a `<think>`
reasoning of 200-1500 words, then the answer in `<answer>\\boxed{...}</answer>` or a trailing
`\\boxed{}`, with the answer kinds of MATH-style data (58% integers, 16% fractions, 10% radicals
and pi, 10% algebra and intervals, 6% decimals), in groups of 8 responses to one problem as GRPO
samples them: half right, in one of the answer's forms (`\\dfrac{3}{4}`, `3/4`), most wrong ones
among two or three values, 5% without an answer, math-verify's verdicts remembered per (answer,
gold) as the verifier does. `r1_unique` is the pessimistic case: every response to a different
problem, nothing remembered (as `latex`). Per core is per CPU second: verifications
divided by the CPU time of the parent and its workers (read from /proc), which a busy shared
machine slows less than wall time.

    .venv/bin/python benchmarks/math_verify.py [--seconds 5]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time

from relayrl.config import RewardConfig
from relayrl.reward.verifiers.math import MathVerifier
from relayrl.reward.verifiers.math_workers import _cpu_seconds

LATEX = [("\\boxed{\\frac{1}{2}}", "0.5"), ("\\boxed{x^2+1}", "1+x^2"), ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"),
         ("\\boxed{\\frac{1}{2^{99}}}", "\\frac{1}{2^{98}}")]
INTEGER = [("<think>..</think><answer>42</answer>", "42"), ("\\boxed{17}", "18")]
WORDS = ("so we have the sum of the roots which means that substituting back gives us the value and then "
         "let us check the case where n is even since the product is divisible by three therefore the "
         "equation becomes simpler if we factor it wait that is not right let me recompute the term").split()


def _problem(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """(gold, ways to write it, wrong answers of the same kind) for one problem."""
    kind = rng.choices(["int", "frac", "radical", "algebra", "decimal"], [58, 16, 10, 10, 6])[0]
    a, b = rng.randint(1, 999), rng.randint(2, 97)
    c = a + rng.randint(1, 9)
    if kind == "int":
        return str(a), [str(a)], [str(c), str(a * 2)]
    if kind == "frac":
        return f"\\frac{{{a}}}{{{b}}}", [f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}"], \
            [f"\\frac{{{c}}}{{{b}}}", f"\\frac{{{b}}}{{{a}}}"]
    if kind == "radical":
        if rng.random() < 0.5:
            return (f"{b}\\sqrt{{{a}}}", [f"{b}\\sqrt{{{a}}}", f"\\sqrt{{{a}}} \\cdot {b}"],
                    [f"{b}\\sqrt{{{c}}}", f"{c}\\sqrt{{{a}}}"])
        return f"{b}\\pi", [f"{b}\\pi", f"\\pi {b}"], [f"{c}\\pi", f"\\frac{{{b}\\pi}}{{2}}"]
    if kind == "algebra":
        return rng.choice([(f"x^2+{a}x+{b}", [f"x^2+{a}x+{b}", f"x^{{2}} + {a}x + {b}"], [f"x^2+{c}x+{b}"]),
                           (f"[{b}, {a})", [f"[{b}, {a})", f"[{b},{a})"], [f"({b}, {a}]"]),
                           (f"(x-{b})^2", [f"(x-{b})^2", f"x^2-{2 * b}x+{b * b}"], [f"(x+{b})^2"])])
    return f"{a}.{b}", [f"{a}.{b}", f"{a}.{b}0"], [f"{c}.{b}"]


def _response(rng: random.Random, written: str) -> str:
    thinking = " ".join(rng.choice(WORDS) for _ in range(rng.randint(200, 1500)))
    if not written:
        return "<think>" + thinking + "</think> I am not sure."
    return "<think>" + thinking + rng.choice([f"</think>\n<answer>\\boxed{{{written}}}</answer>",
                                              f" So the final answer is $\\boxed{{{written}}}$.</think>"])


def r1_corpus(prompts: int, group: int, seed: int = 0) -> list[tuple[str, str]]:
    """`group` responses to each of `prompts` problems, as a policy samples them (see the module
    docstring): half right in one of the answer's forms, most wrong ones among a few values, 5%
    without an answer. group=1: every response a different problem."""
    rng = random.Random(seed)
    out = []
    for _ in range(prompts):
        gold, right, wrong = _problem(rng)
        for _ in range(group):
            roll = rng.random()
            written = "" if roll < 0.05 else rng.choice(right) if roll < 0.55 else rng.choice(wrong)
            out.append((_response(rng, written), gold))
    return out


def rate(verifier: MathVerifier, pairs, seconds: float, threads: int = 4) -> tuple[float, float]:
    """(verifications per wall second, per CPU second of the parent and its workers)."""
    count, stop = [0], time.monotonic() + seconds
    workers = verifier.workers.pids()
    cpu_before = sum(_cpu_seconds(p) for p in workers) + sum(os.times()[:2])

    def work(offset: int) -> None:
        i = offset
        while time.monotonic() < stop:
            verifier.score(*pairs[i % len(pairs)])
            i += threads
            count[0] += 1

    runners = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for r in runners:
        r.start()
    for r in runners:
        r.join()
    wall = time.monotonic() - started
    cpu = sum(_cpu_seconds(p) for p in workers) + sum(os.times()[:2]) - cpu_before
    return count[0] / wall, count[0] / max(cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    verifier = MathVerifier(RewardConfig(workers=2))
    try:
        integer, _ = rate(verifier, INTEGER, args.seconds)
        verifier.memo_size = 0  # every LaTeX pair through math-verify, however often it repeats
        latex, latex_cpu = rate(verifier, LATEX, args.seconds)
        unique, unique_cpu = rate(verifier, r1_corpus(4000, 1, seed=1), args.seconds)
        verifier.memo_size = 16384
        corpus = r1_corpus(500, 8)
        r1, r1_cpu = rate(verifier, corpus, args.seconds)
        outcomes = [verifier.score(r, g).outcome for r, g in r1_corpus(25, 8, seed=2)]
    finally:
        verifier.close()
    print(json.dumps({"integer_fast_path_per_s": round(integer, 1), "latex_math_verify_per_s": round(latex, 1),
                      "latex_per_cpu_s": round(latex_cpu, 1), "r1_per_s": round(r1, 1), "r1_per_cpu_s": round(r1_cpu, 1),
                      "r1_unique_per_s": round(unique, 1), "r1_unique_per_cpu_s": round(unique_cpu, 1),
                      "r1_pass_share": round(outcomes.count("pass") / len(outcomes), 3),
                      "r1_infra_errors": outcomes.count("infra_error"), "workers": 2, "threads": 4,
                      "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
