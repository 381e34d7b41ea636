"""Math verification throughput: samples per second through `MathVerifier` with 2 worker
processes, on integer answers (the parent's exact fast path) and on LaTeX answers (math-verify in
the workers under deadlines), each from 2 threads as the service drives it.

    .venv/bin/python benchmarks/math_verify.py [--seconds 5]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from relayrl.config import RewardConfig
from relayrl.reward.verifiers.math import MathVerifier

LATEX = [("\\boxed{\\frac{1}{2}}", "0.5"), ("\\boxed{x^2+1}", "1+x^2"), ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"),
         ("\\boxed{\\frac{1}{2^{99}}}", "\\frac{1}{2^{98}}")]
INTEGER = [("<think>..</think><answer>42</answer>", "42"), ("\\boxed{17}", "18")]


def rate(verifier: MathVerifier, pairs, seconds: float, threads: int = 2) -> float:
    count, stop = [0], time.monotonic() + seconds

    def work() -> None:
        i = 0
        while time.monotonic() < stop:
            verifier.score(*pairs[i % len(pairs)])
            i += 1
            count[0] += 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return count[0] / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    verifier = MathVerifier(RewardConfig(workers=2))
    try:
        figures = {"integer_fast_path_per_s": round(rate(verifier, INTEGER, args.seconds), 1),
                   "latex_math_verify_per_s": round(rate(verifier, LATEX, args.seconds), 1), "workers": 2}
    finally:
        verifier.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
