"""The math verifier: DeepSeek-R1's rule-based reward (accuracy + format), with real deadlines.

Accuracy: the final answer is extracted as `answer.extract_answer` says (answer tag, last
`\\boxed{}`, or the text after `</think>`; math-verify picks the last expression of the latter);
a special token inside it makes it a `fail`. Plain integers and decimals compare exactly in the
parent as digit strings (no sympy, no conversion limit); an answer too complex to be worth
checking (`math_guard.py`: length, nesting, exponent towers, huge literals, each compared with the
gold's own) fails without sympy; everything else goes to math-verify in a worker process under a
CPU budget and a wall-clock deadline (`math_workers.py`), which also decides whose fault a slow
check is: an answer that spends the budget fails, a worker starved or killed from outside is an
`infra_error` (retried by the service).

Exact numbers (no symbols, no decimals) must be exactly equal: math-verify's numeric tolerance
alone calls `1/2^{99}` and `1/2^{98}` equal. Gold answers longer than `max_reference_chars` are a
data error (refused when a group arrives: `check_reference`). Nothing a response contains makes
`score` raise. What this does not cover: answers whose meaning depends on units or words;
otherwise math-verify's own notion of equality is the judge.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from relayrl.config import RewardConfig
from relayrl.reward.verifiers.answer import (
    SPECIAL_TOKEN,
    extract_answer,
    format_reward,
    strip_delimiters,
    strip_trailing_special,
)
from relayrl.reward.verifiers.base import Score, Verifier
from relayrl.reward.verifiers.math_guard import shape, too_complex

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")


def _integer(s: str) -> str:
    """A plain integer's canonical digits with its sign (no int(): CPython refuses to convert more
    than 4300 digits, and an answer may have any number)."""
    negative, digits = s.startswith("-"), s.lstrip("+-").lstrip("0") or "0"
    return "-" + digits if negative and digits != "0" else digits


def fast_compare(answer: str, gold: str) -> bool | None:
    """Exact comparison of plain numbers without sympy; None when math-verify must decide."""
    a, g = strip_delimiters(answer), strip_delimiters(gold)
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(g):
        return _integer(a) == _integer(g)
    if (_INTEGER.fullmatch(a) or _DECIMAL.fullmatch(a)) and (_INTEGER.fullmatch(g) or _DECIMAL.fullmatch(g)):
        # Equal decimals pass at once; unequal ones may still agree under math-verify's rounding.
        try:
            return True if Decimal(a) == Decimal(g) else None
        except InvalidOperation:  # past the decimal context's limits: let math-verify decide
            return None
    return None


def gold_of(gold: str):
    """The gold answer parsed by math-verify (in a worker, its own timeouts off), or None when
    it does not parse: a data error, not the model's."""
    from math_verify import parse

    parsed = parse(gold if ("\\boxed" in gold or "$" in gold) else f"\\boxed{{{gold}}}", parsing_timeout=None)
    return parsed or None


def verify_answer(gold_parsed, prediction: str) -> tuple[bool, dict]:
    """Parse the model's answer and compare it with the parsed gold (in a worker)."""
    from math_verify import parse, verify

    pred_parsed = parse(prediction, parsing_timeout=None)
    ok = bool(pred_parsed) and verify(gold_parsed, pred_parsed, timeout_seconds=None)
    info = {"parsed": str(pred_parsed[0])[:200] if pred_parsed else None, "gold_parsed": str(gold_parsed[0])[:200]}
    if ok and exact_mismatch(gold_parsed[0], pred_parsed[0]):
        ok, info["reason"] = False, "exact values differ (math-verify's numeric tolerance called them equal)"
    return ok, info


@lru_cache(maxsize=4096)
def _gold_shape(gold: str):
    return shape(gold)


def exact_mismatch(gold, pred) -> bool:
    """True when both are exact numbers (no symbols, no decimals) whose exact values differ.

    math-verify compares numbers with a tolerance, so `1/2^{99}` equals `1/2^{98}` to it; exact
    answers must be exactly equal. Decimals keep math-verify's tolerance (0.333 may stand for
    1/3 where the problem asks for a rounded answer)."""
    import sympy

    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr)):
        return False
    if gold.free_symbols or pred.free_symbols or gold.has(sympy.Float) or pred.has(sympy.Float):
        return False
    difference = sympy.simplify(gold - pred)
    return bool(difference.is_number and difference != 0)


class MathVerifier(Verifier):
    """R1's math reward: `weights.accuracy * accuracy + weights.format * format`."""

    kind = "math"

    def __init__(self, cfg: RewardConfig) -> None:
        from relayrl.reward.verifiers.math_workers import MathWorkers

        self.cfg = cfg
        self.workers = MathWorkers(cfg.workers, cfg.timeout_s, cfg.verify_cpu_budget_s, cfg.verify_memory_mb)

    def check_reference(self, reference: str) -> None:
        if len(reference) > self.cfg.max_reference_chars:
            raise ValueError(f"gold answer of {len(reference)} characters is longer than "
                             f"reward.max_reference_chars={self.cfg.max_reference_chars}")

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
            try:
                outcome = self.workers.verify(prediction, reference)
            except RuntimeError as exc:  # no worker could be started, or the verifier is closed
                return Score.infra_error(f"math-verify unavailable: {exc}", **details)
            if outcome.kind == "infra":
                failed = Score.infra_error(outcome.reason, **details)
                failed.duration_s = time.monotonic() - started
                return failed
            acc = float(outcome.ok) if outcome.kind == "result" else 0.0
            details.update(outcome.info, path="math-verify")
            if outcome.kind == "expensive":
                details["reason"] = outcome.reason
        w = self.cfg.weights
        return Score("pass" if acc == 1.0 else "fail", w.accuracy * acc + w.format * fmt,
                     {"accuracy": acc, "format": fmt}, details, time.monotonic() - started)

    def lane_workers(self) -> int:
        # More threads than worker processes: fast-path samples (plain numbers) need no process slot.
        return self.cfg.workers + 4

    def close(self) -> None:
        self.workers.close()
