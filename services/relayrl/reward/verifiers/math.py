"""The math verifier: DeepSeek-R1's rule-based reward (accuracy + format), with real deadlines.

Accuracy: the final answer is extracted as `answer.extract_answer` says (answer tag, last
`\\boxed{}`, or the text after `</think>`; math-verify picks the last expression of the latter);
a special token inside it makes it a `fail`. Plain integers compare exactly in the parent (no
sympy); everything else goes to math-verify in a worker process. Format: `answer.format_reward`.

Why processes: math-verify's own timeouts use `signal.alarm`, which only works in a main thread,
and sympy can spin forever on inputs like `9^{9^{9^{9}}}`. So workers call math-verify with its
timeouts off, the parent enforces `timeout_s` with `future.result(timeout)`, and a late worker is
killed with its pool (the sample is an `infra_error`, retried by the service). Workers come from a
`forkserver` with math-verify preloaded, never forked from a threaded gRPC process.

Exact numbers (no symbols, no decimals) must be exactly equal: math-verify's numeric tolerance
alone calls `1/2^{99}` and `1/2^{98}` equal. Gold answers longer than `max_reference_chars` are a
data error. What this does not cover: answers whose meaning depends on units or words; otherwise
math-verify's own notion of equality is the judge.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from decimal import Decimal

from relayrl.config import RewardConfig
from relayrl.lifetime import die_with
from relayrl.reward.verifiers.answer import (
    SPECIAL_TOKEN,
    extract_answer,
    format_reward,
    strip_delimiters,
    strip_trailing_special,
)
from relayrl.reward.verifiers.base import Score, Verifier

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")


def fast_compare(answer: str, gold: str) -> bool | None:
    """Exact comparison of plain numbers without sympy; None when math-verify must decide."""
    a, g = strip_delimiters(answer), strip_delimiters(gold)
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(g):
        return int(a) == int(g)
    if (_INTEGER.fullmatch(a) or _DECIMAL.fullmatch(a)) and (_INTEGER.fullmatch(g) or _DECIMAL.fullmatch(g)):
        # Equal decimals pass at once; unequal ones may still agree under math-verify's rounding.
        return True if Decimal(a) == Decimal(g) else None
    return None


def _init_worker(service_pid: int) -> None:
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    die_with(service_pid)  # a killed service takes its workers (and so the forkserver) with it


def verify_in_worker(prediction: str, gold: str) -> tuple[bool | None, dict]:
    """Run in a worker process: parse both with math-verify (its signal timeouts off) and
    compare. (None, …) when the gold answer does not parse: a data error, not the model's."""
    from math_verify import parse, verify

    gold_text = gold if ("\\boxed" in gold or "$" in gold) else f"\\boxed{{{gold}}}"
    gold_parsed = parse(gold_text, parsing_timeout=None)
    if not gold_parsed:
        return None, {"error": "gold answer does not parse", "gold": gold[:200]}
    pred_parsed = parse(prediction, parsing_timeout=None)
    ok = bool(pred_parsed) and verify(gold_parsed, pred_parsed, timeout_seconds=None)
    info = {"parsed": str(pred_parsed[0])[:200] if pred_parsed else None, "gold_parsed": str(gold_parsed[0])[:200]}
    if ok and exact_mismatch(gold_parsed[0], pred_parsed[0]):
        ok, info["reason"] = False, "exact values differ (math-verify's numeric tolerance called them equal)"
    return ok, info


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
        self.cfg = cfg
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["math_verify", "relayrl.reward.verifiers.math"])
        self._slots = threading.BoundedSemaphore(cfg.workers)  # the deadline counts running time only
        self._lock = threading.Lock()
        self._generation = 0
        self._pool: ProcessPoolExecutor | None = self._new_pool()

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
        else:
            prediction = answer if source == "response" else f"\\boxed{{{answer}}}"
            ok, info, error = self._run(prediction, reference)
            if error is not None or ok is None:
                failed = Score.infra_error(error or info.get("error", "verifier failed"), **details)
                failed.duration_s = time.monotonic() - started
                return failed
            acc = float(ok)
            details.update(info, path="math-verify")
        w = self.cfg.weights
        return Score("pass" if acc == 1.0 else "fail", w.accuracy * acc + w.format * fmt,
                     {"accuracy": acc, "format": fmt}, details, time.monotonic() - started)

    def _run(self, prediction: str, gold: str) -> tuple[bool | None, dict, str | None]:
        """Verify in a worker under the deadline; (ok, info, error) with error set on an
        infrastructure failure (timeout, crashed worker), after which the pool is replaced."""
        with self._slots:
            with self._lock:
                if self._pool is None:
                    raise RuntimeError("MathVerifier is closed")
                pool, generation = self._pool, self._generation
            try:
                future = pool.submit(verify_in_worker, prediction, gold)
                ok, info = future.result(timeout=self.cfg.timeout_s)
                return ok, info, None
            except BrokenProcessPool as exc:  # a worker died (killed, out of memory), now or earlier
                error = f"verifier worker died: {exc!r}"
            except RuntimeError as exc:  # submit: another thread shut this pool down to replace it
                if "after shutdown" not in str(exc):
                    raise
                error = f"verifier worker pool was being replaced: {exc!r}"
            except FuturesTimeout:
                error = f"verification exceeded {self.cfg.timeout_s}s"
            self._recycle(generation)  # a no-op when another thread already replaced this pool
            return None, {}, error

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.cfg.workers, mp_context=self._ctx, initializer=_init_worker,
                                   initargs=(os.getpid(),))
        # Start every worker and warm math-verify's caches, so no deadline pays for start-up.
        for future in [pool.submit(verify_in_worker, "\\boxed{1}", "1") for _ in range(self.cfg.workers)]:
            future.result(timeout=120)
        return pool

    def lane_workers(self) -> int:
        # More threads than worker processes: fast-path samples (plain numbers) need no process slot.
        return self.cfg.workers + 4

    def _recycle(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._pool is None:
                return  # another thread already replaced this pool
            _kill(self._pool)
            self._pool = self._new_pool()
            self._generation += 1

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                _kill(self._pool)
                self._pool = None


def _kill(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers at once (a stuck sympy call never returns), then reap them."""
    processes = list((pool._processes or {}).values())  # no public API lists a pool's workers
    for proc in processes:
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.join(timeout=5)

