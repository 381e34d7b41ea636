"""`reward:` — the reward service: component weights, the verifiers of each task kind (math,
code, SWE), per-kind lanes with admission limits, and the slow lane of long (SWE) jobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from relayrl.config.base import Section
from relayrl.config.sandbox import SWE_LIMITS, SandboxConfig, SandboxLimits


class RewardWeights(Section):
    """Weights of R1's rule-based reward components; the reward is their weighted sum."""

    accuracy: float = 1.0
    """The final answer (the last `\\boxed{}` or `<answer>` content) equals the gold answer."""
    format: float = 0.0
    """Reasoning inside `<think>…</think>`, then the answer inside `<answer>…</answer>`."""
    language: float = 0.0
    """R1's language consistency: the share of the reasoning written in the prompt's script."""


class CodeConfig(Section):
    """The code verifier: Python programs against stdio or assert tests, run in the sandbox."""

    concurrency: int = Field(0, ge=0)
    """Sandbox jobs run at once (the code lane's worker pool); 0: one per CPU core."""
    max_program_chars: int = Field(100_000, gt=0)
    """Longer programs fail without running."""
    max_cases: int = Field(1000, gt=0)
    """Test specs with more cases are a data error: refused when their group or Score request arrives."""
    max_timeout_s: float = Field(30.0, gt=0)
    """Upper bound on a spec's per-case `timeout_s`."""
    max_job_s: float = Field(120.0, gt=0)
    """Wall-clock deadline of one whole job (every case), whatever the spec asks."""
    early_stop: bool = True
    """Stop at the first failing case (a spec's `early_stop` overrides it; partial credit runs every case)."""
    partial_credit: bool = False
    """Reward the share of test cases passed instead of all or nothing (a spec's `partial_credit` overrides it)."""
    cache_size: int = Field(10_000, ge=0)
    """Results kept by content hash of (program, spec); 0 disables the cache."""
    prespawn: bool = True
    """Keep two sandboxes per job slot started ahead of their jobs (the judge waiting for its input): a job pays none of its sandbox's start-up; each waiting sandbox holds a uid and a few idle processes."""


class LaneConfig(Section):
    """Admission control per task kind: each kind has its own workers and a bounded backlog."""

    workers: int = Field(0, ge=0)
    """Threads scoring this kind at once; 0: the kind's default (math: reward.workers + 4, code: code.concurrency)."""
    max_pending: int = Field(1024, ge=1)
    """Samples of this kind accepted and not yet scored; past it requests get RESOURCE_EXHAUSTED."""


class LanesConfig(Section):
    """One lane per task kind, so slow code jobs never hold up math samples."""

    math: LaneConfig = LaneConfig()
    """The math lane."""
    code: LaneConfig = LaneConfig(max_pending=256)
    """The code lane (sandbox jobs)."""
    swe: LaneConfig = LaneConfig(max_pending=4096)
    """The SWE lane: samples queued on the slow lane and not yet scored (workers is unused: the slow lane's workers score them)."""


class SweConfig(Section):
    """The SWE verifier: apply a patch to a task's repository and run its tests in the sandbox."""

    tasks_root: Path | None = None
    """Directory a relative task path in a prompt's reference is resolved against; null: the working directory."""
    concurrency: int = Field(0, ge=0)
    """Sandbox jobs one verifier runs at once; 0: one per CPU core."""
    max_patch_chars: int = Field(200_000, gt=0)
    """Longer patches fail without running."""
    max_timeout_s: float = Field(1800.0, gt=0)
    """Upper bound on a task's `timeout_s`."""
    limits: SandboxLimits = SWE_LIMITS
    """Limits of one SWE job (the sandbox's isolation settings are `reward.sandbox`'s)."""


class LatencyEmulation(Section):
    """An EMULATION of SWE-like reward latency for benchmarks: a lognormal delay before each
    slow-lane job, so a cheap reward behaves like minutes-long test runs. Never for real training."""

    median_s: float = Field(gt=0)
    """Median of the emulated delay, in seconds."""
    p99_s: float = Field(gt=0)
    """99th percentile of the emulated delay (>= median_s; equal gives a constant delay)."""
    max_s: float = Field(600.0, gt=0)
    """Cap on one delay."""
    seed: int = 0
    """Seed of the delays (each job's delay depends only on the seed and the job id)."""

    @model_validator(mode="after")
    def _ordered(self) -> LatencyEmulation:
        if self.p99_s < self.median_s:
            raise ValueError("reward.slow_lane.emulate_latency.p99_s must be >= median_s")
        return self


class SlowLaneConfig(Section):
    """The slow lane: long reward jobs on their own Redis stream (`relayrl:{run}:swe`), leased by reward workers."""

    kinds: list[str] = ["swe"]
    """Task kinds scored through the slow lane instead of the reward service's own threads."""
    lease_s: float = Field(30.0, gt=0)
    """A job whose worker has not renewed its lease for this long is leased again (XAUTOCLAIM); workers renew every lease_s / 3."""
    max_deliveries: int = Field(3, ge=1)
    """Leases of one job that may end without a result (a worker died, an infrastructure error); then it goes to the dead-letter stream and its sample is an infrastructure error."""
    service_workers: int = Field(1, ge=0)
    """Worker loops the reward service runs in its own process (0: only `relayrl serve reward-worker` processes score)."""
    concurrency: int = Field(2, ge=1)
    """Jobs one worker (loop or process) runs at once."""
    poll_s: float = Field(1.0, gt=0)
    """Longest a worker blocks waiting for a job, and how often the service refreshes the lane's metrics."""
    emulate_latency: LatencyEmulation | None = None
    """Benchmarks only: an emulated heavy-tailed delay before every slow-lane job; null: none."""


class RewardConfig(Section):
    """The reward service."""

    weights: RewardWeights = RewardWeights()
    """Component weights."""
    workers: int = Field(1, ge=1)
    """Verifier worker processes."""
    timeout_s: float = Field(5.0, gt=0)
    """How long a math verification may go without CPU progress (a stopped or starved worker) before it is an infrastructure error (also: any check still running after 10 x timeout_s); the answer's own cost is bounded by verify_cpu_s."""
    verify_cpu_s: float | None = Field(None, gt=0)
    """CPU seconds one math verification may use (read every 50 ms, and enforced by RLIMIT_CPU rounded up to whole seconds); an answer that spends them fails: too costly to check, the model's fault. null: half of timeout_s."""
    verify_memory_mb: int = Field(1024, ge=64)
    """Address space a math-verify worker may add to its size at start; an answer that needs more fails."""
    max_response_chars: int = Field(20_000, gt=0)
    """Longer responses are cut to their last characters before parsing."""
    max_attempts: int = Field(3, ge=1)
    """Tries for a sample whose verification hit an infrastructure error."""
    max_group_attempts: int = Field(3, ge=1)
    """Leases of one prompt whose groups end in infrastructure errors (fewer than two samples scored, so the learner could not train them) before the prompt is dead-lettered; until then each such group is not written and its prompt is generated again."""
    max_reference_chars: int = Field(100_000, gt=0)
    """Longer gold answers are a data error, refused when their group or Score request arrives (instead of a parse that may never end)."""
    sandbox: SandboxConfig = SandboxConfig()
    """Isolation of untrusted code."""
    code: CodeConfig = CodeConfig()
    """The code verifier."""
    lanes: LanesConfig = LanesConfig()
    """Per-kind lanes: workers and admission limits of each task kind."""
    swe: SweConfig = SweConfig()
    """The SWE verifier."""
    slow_lane: SlowLaneConfig = SlowLaneConfig()
    """The slow lane of long jobs (SWE) and its reward workers."""

    @property
    def verify_cpu_budget_s(self) -> float:
        """The CPU budget of one math verification (`verify_cpu_s`, or half of `timeout_s`)."""
        return self.verify_cpu_s if self.verify_cpu_s is not None else self.timeout_s / 2

    @model_validator(mode="after")
    def _budget_within_deadline(self) -> RewardConfig:
        if self.verify_cpu_budget_s >= self.timeout_s:
            raise ValueError("reward.verify_cpu_s must be less than reward.timeout_s, so that a worker with a "
                             "fair share of a core spends its budget well before 10 x timeout_s (an infrastructure error)")
        return self
