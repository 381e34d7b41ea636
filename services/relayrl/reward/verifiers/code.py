"""The code verifier: a model's Python program against a test spec, judged in the sandbox.

The reference of a "code" prompt is a JSON test spec (`code_spec`: stdio cases or assert tests).
stdio: every output line is compared with the expected one (trailing whitespace ignored; a
missing or extra line fails; a non-zero exit fails). assert: the test code runs in the trusted
judge and calls the entry point in a separate process (`reward/inside/checker.py`), with only
inert data crossing back. `timeout_s` is per case; `early_stop` (default from config) stops at
the first failing case. The program is the last ```python fenced block of the response (or the
whole response when it has no fence), between the spec's trusted `prefix` and `suffix` when it
has them.

One sandbox job per (program, spec): every case runs in it, with per-case results in
`details["cases"]`. Results are cached by a content hash of (program, spec), and concurrent
requests for the same content share one job, so a retried request (same sample, same tests) is
idempotent and costs nothing. Outcome: `pass` when every case passed; `fail` when any failed,
timed out or the program exhausted a limit, and whenever the judge ends without a verdict after
telling the service the program was about to run (only the program shares the sandbox with it),
unless the judge died of a SIGKILL the service did not send; `infra_error` when the sandbox
itself failed, the judge failed before anything untrusted ran, or the spec is malformed (the
data's fault: the reward service refuses such a request before scoring, `refusal`). The
accuracy component is 1 for `pass` and 0 otherwise, or with partial credit
(`reward.code.partial_credit`, or the spec's `partial_credit`) the share of cases passed, every
case run (no early stop).
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
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
from relayrl.reward.verifiers.code_spec import extract_program, parse_spec, program_of

__all__ = ["CodeVerifier", "extract_program", "parse_spec"]

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
HARNESS_FILES = ("harness.py", "zygote.py", "pump.py", "checker.py", "candidate.py", "wire.py")
_CASE_KILLS = {"timeout": "timeout", "output": "output", "killed": "signal"}


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

    def refusal(self, reference: str) -> str | None:
        try:
            parse_spec(reference, self.code.max_cases, self.code.max_timeout_s)
        except SpecError as exc:
            return f"bad code reference: {exc}"
        return None

    def score(self, response: str, reference: str) -> Score:
        started = time.monotonic()
        w = self.cfg.weights
        fmt = format_reward(response)
        try:
            spec = parse_spec(reference, self.code.max_cases, self.code.max_timeout_s)
        except SpecError as exc:
            return Score.infra_error(f"bad test spec: {exc}")
        program = program_of(response, spec)
        if len(program) > self.code.max_program_chars:
            return Score("fail", w.format * fmt, {"accuracy": 0.0, "format": fmt},
                         {"reason": f"program longer than {self.code.max_program_chars} characters"})
        result = self.run_job(program, spec)
        if result.outcome == "infra_error":
            return result
        pass_rate = result.components.get("pass_rate", 0.0)
        acc = pass_rate if self._partial(spec) else (1.0 if result.outcome == "pass" else 0.0)
        return Score(result.outcome, w.accuracy * acc + w.format * fmt,
                     {"accuracy": acc, "format": fmt, "pass_rate": pass_rate},
                     dict(result.details), time.monotonic() - started)

    def _partial(self, spec: dict) -> bool:
        return spec.get("partial_credit", self.code.partial_credit)

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
               # partial credit counts every case, so it runs every case
               "early_stop": spec.get("early_stop", self.code.early_stop and not self._partial(spec))}
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

