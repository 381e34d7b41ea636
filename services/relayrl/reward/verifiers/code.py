"""The code verifier: a model's Python program against a test spec, judged in the sandbox.

The reference of a "code" prompt is a JSON test spec, one of two kinds:

    {"kind": "stdio", "cases": [{"stdin": "...", "stdout": "..."}], "timeout_s": 5}
    {"kind": "assert", "entry_point": "f", "test": "def check(candidate): ...", "timeout_s": 5,
     "prelude": "<trusted code both sides run first, e.g. HumanEval's prompt>",
     "asserts": ["assert f(1) == 2", ...]}

stdio: every output line is compared with the expected one (trailing whitespace ignored; a
missing or extra line fails; a non-zero exit fails). assert: the test code runs in the trusted
judge and calls the entry point in a separate process (`reward/inside/checker.py`), with only
inert data crossing back. `timeout_s` is per case; `early_stop` (default from config) stops at
the first failing case. The program is the last ```python fenced block of the response (or the
whole response when it has no fence).

One sandbox job per (program, spec): every case runs in it, with per-case results in
`details["cases"]`. Results are cached by a content hash of (program, spec), and concurrent
requests for the same content share one job, so a retried request (same sample, same tests) is
idempotent and costs nothing. Outcome: `pass` when every case passed; `fail` when any failed,
timed out or the program exhausted a limit, and whenever the judge ends without a verdict after
telling the service the program was about to run (only the program shares the sandbox with it),
unless the judge died of a SIGKILL the service did not send; `infra_error` when the sandbox
itself failed, the judge failed before anything untrusted ran, or the spec is malformed (the
data's fault: the reward service refuses such a request before scoring, `check_reference`).
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from relayrl.config import RewardConfig
from relayrl.reward.errors import SpecError
from relayrl.reward.prespawn import Prespawned
from relayrl.reward.sandbox import Sandbox
from relayrl.reward.sandbox_job import SandboxResult
from relayrl.reward.verdict import read_verdict, responses_fault
from relayrl.reward.verifiers.answer import format_reward
from relayrl.reward.verifiers.base import SandboxedVerifier, Score

KILLS = Counter("relayrl_sandbox_kills_total", "Sandbox jobs or test cases killed, by reason "
                "(timeout, memory, output, signal).", ["reason"])
JOBS = Counter("relayrl_sandbox_jobs_total", "Sandbox jobs run, by outcome.", ["outcome"])
JOB_SECONDS = Histogram("relayrl_sandbox_job_seconds", "Wall time of one sandbox job (all its cases).",
                        buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
CACHE_HITS = Counter("relayrl_code_cache_hits_total", "Code verifications answered from the cache or "
                     "by a job already running for the same content.")
MODE = Gauge("relayrl_sandbox_mode", "1 for the isolation mode untrusted code runs under "
             "(bwrap, weak, unavailable).", ["mode"])

INSIDE = Path(__file__).parent.parent / "inside"  # relayrl/reward/inside: files copied into the sandbox
HARNESS_FILES = ("harness.py", "zygote.py", "checker.py", "candidate.py", "wire.py")
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_CASE_KILLS = {"timeout": "timeout", "output": "output", "killed": "signal"}


def extract_program(response: str) -> str:
    """The last fenced code block of the response, or the whole response when it has none."""
    blocks = _FENCE.findall(response)
    return blocks[-1] if blocks else response


def parse_spec(reference: str, max_cases: int, max_timeout_s: float) -> dict:
    """Validate a JSON test spec; SpecError says what is wrong."""
    try:
        spec = json.loads(reference)
    except ValueError as exc:
        raise SpecError(f"test spec is not JSON: {exc}") from exc
    if not isinstance(spec, dict) or spec.get("kind") not in ("stdio", "assert"):
        raise SpecError('test spec must be an object with "kind": "stdio" or "assert"')
    timeout = spec.get("timeout_s", 5)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= max_timeout_s:
        raise SpecError(f"timeout_s must be a number in (0, {max_timeout_s}]")
    out = {"kind": spec["kind"], "timeout_s": float(timeout)}
    if "early_stop" in spec:
        out["early_stop"] = bool(spec["early_stop"])
    if spec["kind"] == "stdio":
        cases = spec.get("cases")
        if not isinstance(cases, list) or not cases:
            raise SpecError("a stdio spec needs a non-empty list of cases")
        for i, case in enumerate(cases):
            if not isinstance(case, dict) or not isinstance(case.get("stdout"), str) \
                    or not isinstance(case.get("stdin", ""), str):
                raise SpecError(f"stdio case {i} needs string fields stdin and stdout")
        out["cases"] = [{"stdin": c.get("stdin", ""), "stdout": c["stdout"]} for c in cases]
    else:
        entry = spec.get("entry_point")
        if not isinstance(entry, str) or not entry.isidentifier():
            raise SpecError("an assert spec needs an entry_point that is a Python identifier")
        test, asserts = spec.get("test", ""), spec.get("asserts", [])
        if not isinstance(test, str) or not (isinstance(asserts, list) and all(isinstance(a, str) for a in asserts)):
            raise SpecError("test must be a string and asserts a list of strings")
        if not test and not asserts:
            raise SpecError("an assert spec needs a test (defining check) or asserts")
        if not isinstance(spec.get("prelude", ""), str):
            raise SpecError("prelude must be a string")
        out.update(entry_point=entry, test=test, asserts=asserts, prelude=spec.get("prelude", ""))
        out["cases"] = [None] * ((1 if test else 0) + len(asserts))
    if len(out["cases"]) > max_cases:
        raise SpecError(f"{len(out['cases'])} cases exceed code.max_cases={max_cases}")
    return out


class CodeVerifier(SandboxedVerifier):
    """Scores programs in the sandbox; `score` blocks for one job slot (the code lane)."""

    kind = "code"

    def __init__(self, cfg: RewardConfig) -> None:
        self.cfg, self.code = cfg, cfg.code
        self.sandbox = Sandbox(cfg.sandbox)
        for mode in ("bwrap", "weak", "unavailable"):
            MODE.labels(mode).set(1.0 if mode == self.sandbox.mode else 0.0)
        self.concurrency = self.code.concurrency or os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(self.concurrency)  # jobs at once; each leases its own uid
        self._files = {f"/sandbox/{name}": (INSIDE / name).read_bytes() for name in HARNESS_FILES}
        self._argv = [cfg.sandbox.python, "-I", "-S", "/sandbox/harness.py", "{verdict_fd}"]
        self.prespawned = None
        if self.code.prespawn and self.sandbox.mode != "unavailable":
            # two per slot: starting one is mostly waiting (execs, namespaces), so more start at once
            self.prespawned = Prespawned(self.sandbox, self._argv, self._files, True, 2 * self.concurrency)
            weakref.finalize(self, self.prespawned.close)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Score] = OrderedDict()
        self._running: dict[str, Future] = {}

    def lane_workers(self) -> int:
        return self.concurrency  # one lane thread per sandbox job

    def close(self) -> None:
        if self.prespawned is not None:
            self.prespawned.close()

    def check_reference(self, reference: str) -> None:
        parse_spec(reference, self.code.max_cases, self.code.max_timeout_s)

    def score(self, response: str, reference: str) -> Score:
        started = time.monotonic()
        program = extract_program(response)
        w = self.cfg.weights
        fmt = format_reward(response)
        try:
            spec = parse_spec(reference, self.code.max_cases, self.code.max_timeout_s)
        except SpecError as exc:
            return Score.infra_error(f"bad test spec: {exc}")
        if len(program) > self.code.max_program_chars:
            return Score("fail", w.format * fmt, {"accuracy": 0.0, "format": fmt},
                         {"reason": f"program longer than {self.code.max_program_chars} characters"})
        result = self.run_job(program, spec)
        if result.outcome == "infra_error":
            return result
        acc = 1.0 if result.outcome == "pass" else 0.0
        return Score(result.outcome, w.accuracy * acc + w.format * fmt,
                     {"accuracy": acc, "format": fmt, "pass_rate": result.components.get("pass_rate", 0.0)},
                     dict(result.details), time.monotonic() - started)

    def run_job(self, program: str, spec: dict, request_id: str | None = None) -> Score:
        """Judge `program` against a parsed spec. `request_id` defaults to the content hash; a
        request id seen before (cached or running) returns that job's result without a new run."""
        key = request_id or hashlib.sha256(json.dumps([program, spec], sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                CACHE_HITS.inc()
                return self._copy(self._cache[key], cached=True)
            future = self._running.get(key)
            owner = future is None
            if owner:
                future = self._running[key] = Future()
            else:
                CACHE_HITS.inc()
        if not owner:
            return self._copy(future.result(), cached=True)
        try:
            score = self._judge(program, spec)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._running.pop(key, None)
        if score.outcome != "infra_error" and self.code.cache_size:
            with self._lock:
                self._cache[key] = score
                while len(self._cache) > self.code.cache_size:
                    self._cache.popitem(last=False)
        future.set_result(score)
        return self._copy(score, cached=False)

    @staticmethod
    def _copy(score: Score, cached: bool) -> Score:
        return Score(score.outcome, score.reward, dict(score.components), {**score.details, "cached": cached},
                     score.duration_s)

    def _judge(self, program: str, spec: dict) -> Score:
        job = {**spec, "program": program, "python": self.cfg.sandbox.python,
               "max_output_bytes": self.cfg.sandbox.max_output_bytes,
               "early_stop": spec.get("early_stop", self.code.early_stop)}
        if spec["kind"] == "assert":
            del job["cases"]  # placeholders counting the cases; the harness builds them from the test
        deadline = min(self.code.max_job_s, spec["timeout_s"] * len(spec["cases"]) + 5.0)
        with self._slots:
            started = self.prespawned.take() if self.prespawned is not None else \
                self.sandbox.start(self._argv, self._files, as_pid_1=True)
            result = started.finish(marshal.dumps(job), deadline)
        JOB_SECONDS.observe(result.duration_s)
        score = self._outcome(result, len(spec["cases"]))
        JOBS.labels(score.outcome).inc()
        return score

    def _outcome(self, result: SandboxResult, total: int) -> Score:
        details: dict = {"duration_s": round(result.duration_s, 4)}
        if result.kill_reason:
            KILLS.labels(result.kill_reason).inc()
            details["killed"] = result.kill_reason
        if result.error:
            return Score.infra_error(f"sandbox failed: {result.error}", **details)
        untrusted, verdict = read_verdict(result.verdict)
        if verdict is not None and "error" in verdict:  # the judge failed before the program ran
            return Score.infra_error(f"the harness failed: {verdict['error']}", **details)
        if verdict is None or not isinstance(verdict.get("cases"), list):
            if responses_fault(result, untrusted):  # a limit the program exhausted, or the program's doing
                why = f"killed ({result.kill_reason})" if result.kill_reason else f"exit status {result.exit_code}"
                return Score("fail", 0.0, {"accuracy": 0.0, "pass_rate": 0.0},
                             {**details, "reason": f"the job ended without a verdict after the program started ({why})"})
            return Score.infra_error("the harness gave no verdict", exit_code=result.exit_code,
                                     stderr=result.stderr.decode(errors="replace")[-800:], **details)
        cases = verdict["cases"]
        for case in cases:
            if case["status"] in _CASE_KILLS:
                KILLS.labels(_CASE_KILLS[case["status"]]).inc()
        passed = sum(case["status"] == "pass" for case in cases)
        details.update(cases=cases, passed=passed, total=total, stopped_early=verdict.get("stopped_early", False))
        ok = passed == total and not result.kill_reason
        return Score("pass" if ok else "fail", 1.0 if ok else 0.0, {"pass_rate": passed / total}, details)

