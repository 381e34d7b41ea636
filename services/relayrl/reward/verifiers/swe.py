"""The "swe" verifier: a model's patch against a task's tests, judged in the sandbox by test id.

The reference of a "swe" prompt names its task: a task directory (absolute, or relative to
`reward.swe.tasks_root`) or `{"task": "<dir>"}`. One sample is one sandbox job: the task's
cached snapshot goes in as a read-only archive with the trusted harness (`reward/swe/harness.py`),
which applies the patch, restores the test files, runs the tests and returns pytest's JUnit XML
through the verdict pipe; the grade comes from that report by test id (`reward/swe/grading.py`).
The task format, patch extraction and snapshots live beside the harness in `relayrl.reward.swe`.

Outcomes: `pass` when the patch resolves the task; `fail` when the response has no patch, the
patch does not apply, or any required test fails, is skipped, or is missing (the model's fault);
`infra_error` when the task cannot be loaded, the sandbox fails, or the harness gives no verdict
(retried, never a fake zero).

Forged reports: the code under test runs in the test runner's process (as in every pytest-based
SWE grader). Restoring the test files and pytest's configuration files stops the simple forms
(editing tests, a conftest.py hook, printed PASSED lines); a patch whose code reaches into the
runner is refused before it runs, and per-job sentinel tests (some must fail, some must pass)
catch a report rewritten from inside the process (`relayrl.reward.swe.tamper`, which states
what that does not cover). The sandbox bounds what such code can reach (sandbox.py). Repositories
must fit the sandbox's /sandbox mount (16 MiB archived) and need only what the sandbox's
interpreter has installed (pytest: Debian's python3-pytest).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from prometheus_client import Counter, Histogram

from relayrl.config import RewardConfig
from relayrl.reward.errors import TaskError
from relayrl.reward.sandbox import Sandbox
from relayrl.reward.sandbox_job import SandboxResult
from relayrl.reward.swe.grading import grade, parse_junit
from relayrl.reward.swe.patch import extract_patch, touched_paths
from relayrl.reward.swe.tamper import Sentinels, plant_sentinels, tampering
from relayrl.reward.swe.tamper import refusal as patch_refusal
from relayrl.reward.swe.task import SweTask, load_task, task_path
from relayrl.reward.swe.workspace import SnapshotCache
from relayrl.reward.verdict import read_verdict, responses_fault
from relayrl.reward.verifiers.base import SandboxedVerifier, Score

HARNESS = Path(__file__).parent.parent / "swe" / "harness.py"  # the trusted program copied into the sandbox
JOBS = Counter("relayrl_swe_jobs_total", "SWE sandbox jobs, by outcome (pass, fail, infra_error).", ["outcome"])
JOB_SECONDS = Histogram("relayrl_swe_job_seconds", "Wall time of one SWE sandbox job (extract, apply, test).",
                        buckets=(.25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))


class SweVerifier(SandboxedVerifier):
    """Scores patches in the sandbox; `score` blocks for one job slot."""

    kind = "swe"

    def __init__(self, cfg: RewardConfig) -> None:
        self.cfg, self.swe = cfg, cfg.swe
        self.sandbox = Sandbox(cfg.sandbox.with_limits(cfg.swe.limits))
        self.concurrency = cfg.swe.concurrency or os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(self.concurrency)  # jobs at once; each leases its own uid
        self.snapshots = SnapshotCache()
        self._harness = HARNESS.read_bytes()
        self._tasks: dict[str, SweTask] = {}
        self._lock = threading.Lock()

    # -- the Verifier API -----------------------------------------------------------------------
    def score(self, response: str, reference: str) -> Score:
        try:
            task = self.task(reference)
        except TaskError as exc:
            return Score.infra_error(f"bad SWE task: {exc}")
        patch = extract_patch(response)
        if patch is None:
            return self._fail(task, "the response contains no patch (a unified diff)")
        return self.score_patch(task, patch)

    def refusal(self, reference: str) -> str | None:
        try:
            self.task(reference)
        except TaskError as exc:
            return f"bad SWE task: {exc}"
        return None

    def task(self, reference: str) -> SweTask:
        """The task a reference names (loaded once per directory)."""
        path = task_path(reference, self.swe.tasks_root)
        key = str(path)
        with self._lock:
            cached = self._tasks.get(key)
        if cached is None:
            cached = load_task(path)
            if cached.timeout_s > self.swe.max_timeout_s:
                raise TaskError(f"{path}: timeout_s {cached.timeout_s} exceeds reward.swe.max_timeout_s")
            with self._lock:
                self._tasks[key] = cached
        return cached

    def score_patch(self, task: SweTask, patch: str) -> Score:
        """Judge `patch` (a unified diff) against `task`."""
        started = time.monotonic()
        if not patch.strip():
            return self._fail(task, "the patch is empty")
        if len(patch) > self.swe.max_patch_chars:
            return self._fail(task, f"the patch is longer than {self.swe.max_patch_chars} characters")
        if (refused := patch_refusal(patch, task.repo, task.test_files)) is not None:
            return self._fail(task, refused, refused=True)
        files = sorted({node.split("::", 1)[0] for node in task.test_ids})
        sentinels = plant_sentinels(task.test_ids)
        job = {"patch": patch, "test_files": task.test_files, "test_command": task.test_command,
               "test_args": files, "timeout_s": task.timeout_s, "sentinels": sentinels.code}
        inputs = {"/sandbox/harness.py": self._harness, "/sandbox/repo.tar": self.snapshots.get(task.repo)}
        with self._slots:
            result = self.sandbox.run([self.cfg.sandbox.python, "-I", "/sandbox/harness.py", "{verdict_fd}",
                                       "/sandbox/repo.tar"], stdin=json.dumps(job).encode(), files=inputs,
                                      timeout_s=task.timeout_s + 60.0, as_pid_1=True)
        JOB_SECONDS.observe(result.duration_s)
        score = self._grade(task, patch, result, sentinels)
        score.duration_s = time.monotonic() - started
        JOBS.labels(score.outcome).inc()
        return score

    # -- internals ------------------------------------------------------------------------------
    def _fail(self, task: SweTask, reason: str, **details) -> Score:
        return Score("fail", 0.0, {"accuracy": 0.0}, {"instance_id": task.instance_id, "resolved": False,
                                                     "reason": reason, **details})

    def _grade(self, task: SweTask, patch: str, result: SandboxResult, sentinels: Sentinels) -> Score:
        details = {"instance_id": task.instance_id, "sandbox_s": round(result.duration_s, 3),
                   "patched_paths": touched_paths(patch)}
        if result.error:
            return Score.infra_error(f"sandbox failed: {result.error}", **details)
        untrusted, verdict = read_verdict(result.verdict)
        if verdict is None or "error" in verdict:
            why = verdict["error"] if verdict is not None else f"no verdict (exit status {result.exit_code})"
            if responses_fault(result, untrusted) if verdict is None else untrusted:
                return self._fail(task, f"the harness broke after the patch was applied: {why}",
                                  killed=result.kill_reason, **details)
            return Score.infra_error(f"the SWE harness failed: {why}", killed=result.kill_reason,
                                     stderr=result.stderr.decode(errors="replace")[-800:], **details)
        details["apply"] = verdict["apply"]
        if not verdict["apply"]["ok"]:
            return self._fail(task, "the patch does not apply", **details)
        details.update(restored=verdict.get("restored", []), exit_code=verdict.get("exit_code"),
                       timed_out=verdict.get("timed_out", False), output_tail=verdict.get("output_tail", "")[-800:])
        try:
            statuses = parse_junit(verdict["junit"]) if verdict.get("junit") else {}
        except Exception as exc:  # ET.ParseError and expat's limits: the tests broke their own report
            details["report_error"] = repr(exc)
            statuses = {}
        g = grade(statuses, task.fail_to_pass, task.pass_to_pass)
        details.update(resolved=g.resolved, fail_to_pass=g.fail_to_pass, pass_to_pass=g.pass_to_pass,
                       sentinels={n: statuses.get(n, "missing") for n in sentinels.must_fail + sentinels.must_pass})
        if g.resolved and (forged := tampering(statuses, sentinels)) is not None:
            details.update(resolved=False, reason=forged, tampered=True)
            return Score("fail", 0.0, {"accuracy": 0.0}, details)
        if not g.resolved:
            reason = "tests timed out" if details["timed_out"] else f"{len(g.failed_ids)} required tests did not pass"
            details["reason"] = reason
            return Score("fail", 0.0, {"accuracy": 0.0}, details)
        return Score("pass", self.cfg.weights.accuracy, {"accuracy": 1.0}, details)

