"""The math verifier: DeepSeek-R1's rule-based reward (accuracy + format), with real deadlines.

Accuracy: the final answer is the content of the last `<answer>…</answer>` (or the last
`\\boxed{}` inside it), else the last `\\boxed{…}` (balanced braces), else the text after the last
`</think>` (math-verify picks its last expression). Tag and boxed contents are judged as one
expression, so "1 2 3 4 5" inside `\\boxed{}` is not 5. Plain integers compare exactly in the
parent (no sympy); everything else goes to math-verify in a worker process.

Why processes: math-verify's own timeouts use `signal.alarm`, which only works in a main thread,
and sympy can spin forever on inputs like `9^{9^{9^{9}}}`. So workers call math-verify with its
timeouts off, the parent enforces `timeout_s` with `future.result(timeout)`, and a late worker is
killed with its pool (the sample is an `infra_error`, retried by the service). Workers come from a
`forkserver` with math-verify preloaded, never forked from a threaded gRPC process.

Special tokens (`<bos>`, `<|im_end|>`, `</s>`) are never stripped before extraction: stripping
would turn `5<bos>5` into something that parses as 5. A run of them at the very end (EOS,
padding) is ignored, since nothing after the answer can change it; anywhere else inside the
extracted answer they make it a `fail`. Exact numbers (no symbols, no decimals) must be exactly equal: math-verify's
numeric tolerance alone calls `1/2^{99}` and `1/2^{98}` equal. Gold answers longer than
`max_reference_chars` are a data error. What this does not cover: answers whose meaning depends
on units or words; otherwise math-verify's own notion of equality is the judge.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from decimal import Decimal

from relayrl.config import RewardConfig
from relayrl.reward.verifiers import Score, Verifier, register

SPECIAL_TOKEN = re.compile(
    r"<\|[^<>|]{0,64}\|>"                                   # <|im_end|>, <|endoftext|>
    r"|<\uff5c[^<>]{0,64}\uff5c>"                           # DeepSeek's <｜end▁of▁sentence｜>
    r"|</?(?!(?:think|answer)>)[A-Za-z_][A-Za-z0-9_.\-]{1,63}>"  # <bos>, <pad>, <end_of_turn>
    r"|</?s>")
_THINK_TO_ANSWER = re.compile(r"</think>\s*<answer>")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def strip_trailing_special(text: str) -> str:
    """Drop whitespace and special tokens at the very end (EOS, padding); linear time."""
    while True:
        text = text.rstrip()
        if not text.endswith(">"):
            return text
        start = text.rfind("<")
        if start < 0 or not SPECIAL_TOKEN.fullmatch(text, start):
            return text
        text = text[:start]


def format_reward(text: str) -> float:
    """1.0 iff `text` matches `^\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*$` (DOTALL).

    Checked without the regex's backtracking, which is quadratic on adversarial text."""
    s = text.strip()
    if not (s.startswith("<think>") and s.endswith("</answer>")):
        return 0.0
    m = _THINK_TO_ANSWER.search(s, len("<think>"))
    return 1.0 if m is not None and m.end() <= len(s) - len("</answer>") else 0.0


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` with balanced braces (`\\{` and `\\}` are escapes); None
    when there is none or the last one is not closed (only that one is scanned: linear time)."""
    pos = len(text)
    while (i := text.rfind("\\boxed", 0, pos)) >= 0:
        j = i + len("\\boxed")
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            depth, k = 0, j
            while k < len(text):
                c = text[k]
                if c == "\\":
                    k += 2
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        return text[j + 1:k]
                k += 1
            return None
        pos = i
    return None


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    for left, right in _DELIMITERS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            return s[len(left):len(s) - len(right)].strip()
    return s


def extract_answer(text: str) -> tuple[str, str]:
    """(answer, source): source is "answer_tag", "boxed" or "response" (see the module doc)."""
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    if start >= 0:
        content = text[start + len("<answer>"):end]
        boxed = last_boxed(content)
        return _strip_delimiters(boxed if boxed is not None else content), "answer_tag"
    boxed = last_boxed(text)
    if boxed is not None:
        return _strip_delimiters(boxed), "boxed"
    think_end = text.rfind("</think>")
    return (text[think_end + len("</think>"):] if think_end >= 0 else text).strip(), "response"


def fast_compare(answer: str, gold: str) -> bool | None:
    """Exact comparison of plain numbers without sympy; None when math-verify must decide."""
    a, g = _strip_delimiters(answer), _strip_delimiters(gold)
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(g):
        return int(a) == int(g)
    if (_INTEGER.fullmatch(a) or _DECIMAL.fullmatch(a)) and (_INTEGER.fullmatch(g) or _DECIMAL.fullmatch(g)):
        # Equal decimals pass at once; unequal ones may still agree under math-verify's rounding.
        return True if Decimal(a) == Decimal(g) else None
    return None


def _init_worker() -> None:
    logging.getLogger("math_verify").setLevel(logging.ERROR)


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
        self._ctx.set_forkserver_preload(["math_verify", "relayrl.reward.math_verifier"])
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
        pool = ProcessPoolExecutor(self.cfg.workers, mp_context=self._ctx, initializer=_init_worker)
        # Start every worker and warm math-verify's caches, so no deadline pays for start-up.
        for future in [pool.submit(verify_in_worker, "\\boxed{1}", "1") for _ in range(self.cfg.workers)]:
            future.result(timeout=120)
        return pool

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


register(MathVerifier.kind, MathVerifier)
