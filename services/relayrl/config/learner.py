"""`learner:` — the learner: the batch, the staleness bound, the device and precision at the
top, then its sections: `optim` (AdamW and its schedule), `loss` (the algorithm and its
objective), `lora` (low-rank adapters), `fsdp` (sharding under torchrun), `weights` (how versions
are published to the actors) and `checkpoint`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from relayrl.config.base import Section


class OptimConfig(Section):
    """AdamW and its learning-rate schedule."""

    lr: float = Field(1e-3, gt=0)
    """AdamW learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    grad_clip: float = Field(1.0, gt=0)
    """Maximum global gradient norm."""
    lr_warmup_steps: int = Field(0, ge=0)
    """Linear learning-rate warm-up over this many optimizer steps (then constant)."""


class LossConfig(Section):
    """The policy-gradient recipe: advantages, the clipped objective, KL, shaping."""

    algorithm: Literal["grpo", "dr_grpo", "dapo", "rloo"] = "grpo"
    """Policy-gradient recipe: grpo (std-normalised group advantages), dr_grpo (mean-centred advantages, loss summed per sequence over a constant length), dapo (clip-higher, dynamic sampling, token-level loss, overlong shaping), rloo (leave-one-out baseline)."""
    clip_eps: float = Field(0.2, gt=0)
    """PPO clip range of the importance ratio."""
    clip_eps_high: float | None = Field(None, gt=0)
    """Upper clip range of the ratio (DAPO's clip-higher); null: clip_eps, or 0.28 with dapo."""
    kl_beta: float = Field(0.0, ge=0)
    """Weight of the KL estimate (kl_estimator) to the initial (reference) policy; 0 disables it."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Estimator of KL to the reference policy (Schulman): k1 log-ratio, k2 half squared log-ratio, k3."""
    adv_eps: float = Field(1e-4, gt=0)
    """Added to the group std when normalising advantages."""
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"] | None = None
    """How token losses are averaged; null: the algorithm's own (token_mean for grpo and dapo, seq_mean_token_sum_norm over max_new_tokens for dr_grpo, seq_mean_token_mean for rloo)."""
    dynamic_sampling: bool | None = None
    """Drop groups whose shaped rewards are all equal (no gradient) and keep collecting; null: on with dapo."""
    overlong_buffer: int | None = Field(None, ge=0)
    """DAPO's soft overlong punishment: the last this-many tokens before max_new_tokens cost up to overlong_penalty, linearly; 0 disables; null: max(1, max_new_tokens // 5) with dapo, else 0."""
    overlong_penalty: float = Field(1.0, ge=0)
    """Penalty of a completion that reaches max_new_tokens under overlong shaping."""
    objective: Literal["naive", "decoupled"] = "naive"
    """naive: PPO ratio against the actor's behaviour logprobs. decoupled: ratio against the proximal policy (the learner's own, before this batch's first update), weighted per token by proximal / behaviour (corrects stale groups and engine/learner mismatch)."""
    tis_cap: float | None = Field(None, gt=0)
    """Truncated importance sampling: cap of the proximal / behaviour weight (decoupled only); null: no cap."""
    tis_mode: Literal["truncate", "mask"] = "truncate"
    """What the cap does to a token whose proximal / behaviour weight exceeds it: truncate (the weight becomes the cap) or mask (the token is dropped from the loss, AReaL's default)."""

    @model_validator(mode="after")
    def _tis_needs_decoupled(self) -> LossConfig:
        if self.tis_cap is not None and self.objective != "decoupled":
            raise ValueError("learner.loss.tis_cap needs learner.loss.objective: decoupled")
        return self


class NcclConfig(Section):
    """The GPU fast path of weight versions: the learner broadcasts each version to an actor that asks over a process group of two (NCCL on GPUs, gloo on CPUs), beside the gRPC service."""

    port: int | None = Field(None, ge=0, le=65535)
    """TCP port of the learner's weight-broadcast control server (actors use `--learner nccl://host:port`; 0: any free port, for `relayrl serve learner` only); null: off."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Process-group backend of the transfers: auto is nccl where CUDA is present, else gloo."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds a rendezvous or one transfer may take before the pair's group is abandoned (the actor may ask again)."""


class PublishConfig(Section):
    """How each version travels to the actors."""

    wire_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    """Dtype weights travel in to the actors."""
    chunk_bytes: int = Field(4 * 1024 * 1024, gt=0)
    """Size of one weight chunk on the wire."""
    keep_versions: int = Field(2, ge=1)
    """Serialized versions kept in memory for actors still pulling an older one."""
    nccl: NcclConfig = NcclConfig()
    """The broadcast fast path to actors on GPUs (off unless a port is set)."""


class CheckpointConfig(Section):
    """Durable checkpoints (Hugging Face directories plus the trainer state and the ledger)."""

    every: int = Field(50, ge=1)
    """Save a checkpoint every this many steps (and at the end); scored groups are acknowledged only once a checkpoint holds them."""


class LoraConfig(Section):
    """Low-rank adapters (PEFT LoRA): only the adapters train, only they travel to the actors."""

    rank: int = Field(0, ge=0)
    """Rank r of every adapter; 0 disables LoRA (the whole model trains)."""
    alpha: float = Field(16.0, gt=0)
    """LoRA alpha: an adapter's update B A is scaled by alpha / rank."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapters' input (the proximal and reference forwards run without it)."""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    """Names of the linear layers that get adapters (PEFT's `target_modules`; `all-linear` alone: every linear layer but the output head)."""


class FsdpConfig(Section):
    """FSDP2 (`torch.distributed.fsdp.fully_shard`): how the learner shards under torchrun (WORLD_SIZE > 1)."""

    enabled: bool = False
    """Shard with FSDP2 also in one process (a mesh of one rank: the multi-GPU code path, mixed precision and sharded checkpoints on one GPU); with WORLD_SIZE > 1 FSDP2 is always on."""
    reshard_after_forward: bool = True
    """Free each layer's gathered parameters after its forward (less memory, one more all-gather in the backward)."""


class LearnerConfig(Section):
    """The learner: GRPO-style policy optimisation on scored groups, publishing each version."""

    batch_groups: int = Field(16, ge=1)
    """Groups per optimizer step (B)."""
    max_staleness: int = Field(1, ge=0)
    """Groups generated more than this many versions ago are dropped at training time."""
    steps: int = Field(100, ge=1)
    """Optimizer steps to run."""
    minibatches: int = Field(1, ge=1)
    """Optimizer steps per batch, each on a slice of its rows; the proximal policy is the pre-update one."""
    micro_batch_rows: int | None = Field(None, ge=1)
    """Rows per forward/backward pass: gradients accumulate over a minibatch's micro-batches before its optimizer step, so the learner's peak memory (logits: rows x length x vocabulary floats) is bounded without changing the update; null: a whole minibatch at once."""
    micro_batch_tokens: int | None = Field(None, ge=1)
    """Padded tokens (rows x longest row) per forward/backward pass: rows are sorted by length and packed up to this budget, so long and short responses each cost what they contain; the update is unchanged; null: no token budget (micro_batch_rows alone)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the learner trains: auto is CUDA where torch sees a GPU (the rank's LOCAL_RANK device under torchrun), else the CPU."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: forward and backward in bfloat16 with float32 master weights, gradients reduced in float32, logprob and loss math in float32; fp32: float32 throughout (the CPU default: bf16 is slow on CPUs)."""
    activation_checkpointing: bool = False
    """Recompute each layer's activations in the backward instead of keeping them (less memory, about a third more compute)."""
    ref_offload: bool = False
    """Keep the KL reference model in CPU memory and score it there (no copy on the device); with LoRA the reference is the policy with its adapters off and this does nothing."""
    torch_threads: int = Field(1, ge=1)
    """torch intra-op threads of the learner."""
    seed: int = 0
    """Seed of torch in the learner."""
    optim: OptimConfig = OptimConfig()
    """AdamW and its schedule."""
    loss: LossConfig = LossConfig()
    """The algorithm and its objective."""
    lora: LoraConfig = LoraConfig()
    """Low-rank adapters (off unless rank > 0)."""
    fsdp: FsdpConfig = FsdpConfig()
    """Sharding across ranks under torchrun."""
    weights: PublishConfig = PublishConfig()
    """Publishing weight versions to the actors."""
    checkpoint: CheckpointConfig = CheckpointConfig()
    """Checkpoints."""
