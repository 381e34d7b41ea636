"""The math verifier: DeepSeek-R1's rule-based reward (accuracy + format), with real deadlines.

Accuracy: the final answer is extracted as `answer.extract_answer` says (answer tag, last
`\\boxed{}`, or the text after `</think>`; math-verify picks the last expression of the latter);
a special token inside it makes it a `fail`. Plain integers, decimals and fractions compare
exactly in the parent (`math_exact.py`: no sympy, no conversion limit); an answer too complex to be worth
checking (`math_guard.py`: length, nesting, exponent towers, huge literals, each compared with the
gold's own) fails without sympy; everything else goes to math-verify in a worker process under a
CPU budget and a wall-clock deadline (`math_workers.py`), which also decides whose fault a slow
check is: an answer that spends the budget fails, a worker starved or killed from outside is an
`infra_error` (retried by the service). Verdicts are remembered per (answer, gold): the samples
of a group often agree.

Exact numbers (no symbols, no decimals) must be exactly equal: math-verify's numeric tolerance
alone calls `1/2^{99}` and `1/2^{98}` equal. Gold answers longer than `max_reference_chars` are a
data error (refused when a group arrives: `refusal`). Nothing a response contains makes
`score` raise. What this does not cover: answers whose meaning depends on units or words;
otherwise math-verify's own notion of equality is the judge.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from functools import lru_cache

from relayrl.config import RewardConfig
from relayrl.reward.verifiers.answer import (
    SPECIAL_TOKEN,
    extract_answer,
    format_reward,
    strip_trailing_special,
)
from relayrl.reward.verifiers.base import Score, Verifier
from relayrl.reward.verifiers.math_exact import fast_compare
from relayrl.reward.verifiers.math_guard import shape, too_complex


@lru_cache(maxsize=4096)
def _gold_shape(gold: str):
    return shape(gold)


class MathVerifier(Verifier):
    """R1's math reward: `weights.accuracy * accuracy + weights.format * format`."""

    kind = "math"

    def __init__(self, cfg: RewardConfig) -> None:
        from relayrl.reward.verifiers.math_workers import MathWorkers

        self.cfg = cfg
        self.workers = MathWorkers(cfg.workers, cfg.timeout_s, cfg.verify_cpu_budget_s, cfg.verify_memory_mb)
        self._lock = threading.Lock()
        self._verdicts: OrderedDict[tuple[str, str], tuple[float, dict]] = OrderedDict()
        self.memo_size = 16384
        """How many math-verify verdicts are remembered (0: none; benchmarks measure both)."""

    def refusal(self, reference: str) -> str | None:
        if len(reference) > self.cfg.max_reference_chars:
            return (f"bad math reference: a gold answer of {len(reference)} characters is longer than "
                    f"reward.max_reference_chars={self.cfg.max_reference_chars}")
        return None

    def score(self, response: str, reference: str) -> Score:
        started = time.monotonic()
        if len(reference) > self.cfg.max_reference_chars:
            return Score.infra_error(f"gold answer longer than reward.max_reference_chars={self.cfg.max_reference_chars}")
        truncated = len(response) > self.cfg.max_response_chars
        text = strip_trailing_special(response[-self.cfg.max_response_chars:])
        fmt = format_reward(text)
        answer, source = extract_answer(text)
        details: dict = {"source": source, "answer": answer[-200:], "truncated": truncated}
        if SPECIAL_TOKEN.search(answer):
            acc, details["reason"] = 0.0, "special token inside the answer"
        elif not answer:
            acc, details["reason"] = 0.0, "no answer"
        elif (fast := fast_compare(answer, reference)) is not None:
            acc, details["path"] = float(fast), "fast"
        elif (why := too_complex(shape(answer), _gold_shape(reference))) is not None:
            acc, details["reason"], details["path"] = 0.0, why, "guard"
        else:
            prediction = answer if source == "response" else f"\\boxed{{{answer}}}"
            verdict = self._verify(prediction, reference)
            if isinstance(verdict, Score):
                verdict.details.update(details)
                verdict.duration_s = time.monotonic() - started
                return verdict
            acc, info = verdict
            details.update(info, path="math-verify")
        w = self.cfg.weights
        return Score("pass" if acc == 1.0 else "fail", w.accuracy * acc + w.format * fmt,
                     {"accuracy": acc, "format": fmt}, details, time.monotonic() - started)

    def _verify(self, prediction: str, reference: str) -> tuple[float, dict] | Score:
        """(accuracy, details) from math-verify, remembered for the same (answer, gold): the
        samples of a group often give the same answer, and the verdict is deterministic (the
        CPU budget is CPU time). An infrastructure error comes back as its Score, not remembered."""
        key = (prediction, reference)
        with self._lock:
            if (known := self._verdicts.get(key)) is not None:
                self._verdicts.move_to_end(key)
                return known[0], {**known[1], "cached": True}
        try:
            outcome = self.workers.verify(prediction, reference)
        except RuntimeError as exc:  # no worker could be started, or the verifier is closed
            return Score.infra_error(f"math-verify unavailable: {exc}")
        if outcome.kind == "infra":
            return Score.infra_error(outcome.reason)
        verdict = (float(outcome.ok), dict(outcome.info)) if outcome.kind == "result" else (0.0, {"reason": outcome.reason})
        with self._lock:
            self._verdicts[key] = verdict
            while len(self._verdicts) > self.memo_size:
                self._verdicts.popitem(last=False)
        return verdict[0], dict(verdict[1])

    def lane_workers(self) -> int:
        # More threads than worker processes: fast-path samples (plain numbers) need no process slot.
        return self.cfg.workers + 4

    def close(self) -> None:
        self.workers.close()
