"""Run configuration: one YAML file configures a whole run, every field documented.

Pydantic models only (no torch), so the CLI can parse and validate a config instantly. Backends
are discriminated unions (`type: redis` / `type: memory`). Every service reads the same
`RunConfig`; the single-machine launcher fills in the addresses it assigns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

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


class TaskConfig(_Strict):
    """Where prompts come from."""

    name: Literal["most_frequent_digit", "add_digits"] = "most_frequent_digit"
    """A procedural task shipped in `relayrl.tasks`."""
    seed: int = 0
    """Seed of the prompt generator (training prompts)."""
    num_digits: int = Field(5, ge=2, le=12)
    """Digits per prompt (most_frequent_digit)."""


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


QueueConfig = Annotated[Union[RedisQueue, MemoryQueue], Field(discriminator="type")]


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


class RolloutConfig(_Strict):
    """The rollout actors."""

    num_actors: int = Field(2, ge=1)
    """Actor processes the single-machine launcher starts."""
    engine: Literal["transformers"] = "transformers"
    """Inference engine: a transformers engine for small models on the CPU."""
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
    """Weight of the k3 KL estimate to the initial (reference) policy; 0 disables it."""
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


class RunConfig(_Strict):
    """A whole run; `relayrl train CONFIG` reads one of these from YAML."""

    run: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name; the Redis key prefix `relayrl:{run}:` (runs can share a Redis)."""
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
    def _positions_fit(self) -> "RunConfig":
        if self.rollout.sampling.max_new_tokens >= self.model.tiny.max_position_embeddings:
            raise ValueError("rollout.sampling.max_new_tokens must be below model.tiny.max_position_embeddings")
        return self

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """Read and validate a YAML file; a wrong key or value says which and why."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return cls.model_validate(data)

    def dump(self, path: str | Path) -> None:
        """Write the resolved config as YAML (the launcher hands it to each service)."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))


def keys(run: str) -> "StreamKeys":
    """The Redis names every part shares (DESIGN.md)."""
    return StreamKeys(run)


class StreamKeys:
    """Redis key names of one run."""

    ACTORS = "actors"
    LEARNER = "learner"
    REWARD_WORKERS = "reward-workers"

    def __init__(self, run: str) -> None:
        prefix = f"relayrl:{run}"
        self.prompts = f"{prefix}:prompts"
        self.groups = f"{prefix}:groups"
        self.swe = f"{prefix}:swe"
        self.dead = f"{prefix}:dead"
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
