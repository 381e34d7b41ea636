"""Building the learner's model: the device, the precision, LoRA, activation checkpointing, FSDP2
sharding and the KL reference — the choices `learner.*` makes, applied in one place.

- **Device**: `learner.device` (auto: the CUDA device of this rank's LOCAL_RANK where torch sees a
  GPU, else the CPU).
- **Precision**: the trained weights are always float32 (the master copy AdamW updates). With
  `precision: bf16` the forward and backward run in bfloat16: under FSDP2 by its mixed-precision
  policy (parameters gathered in bf16, gradients reduced in fp32), in one process by autocast.
  The logits are cast to float32 before any logprob or loss math (`tokens.token_logprobs`).
- **LoRA** (`learner.lora.rank` > 0): PEFT adapters on the target modules; the base is frozen.
- **Activation checkpointing**: transformers' non-reentrant checkpointing of every layer.
- **FSDP2** (WORLD_SIZE > 1, or `learner.fsdp.enabled`): every decoder layer (the model's `_no_split_modules`) and then the
  root are `fully_shard`ed over a one-dimensional mesh of the ranks (`distributed.shard`).
- **Reference** (kl_beta > 0), never a second float32 copy on a GPU: the policy itself with its
  adapters off under LoRA; else its own frozen model, in bfloat16 on a GPU (sharded like the
  policy under FSDP) or in CPU memory with `ref_offload` (`reference`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from relayrl.learner.reference import Reference


def resolve_device(name: str) -> torch.device:
    """The torch device `learner.device` names (auto: CUDA where present)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("learner.device is cuda, but torch sees no CUDA device (CPU-only torch, or no GPU)")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


@dataclass
class Built:
    """The trained model (sharded, or on its device) and how its forward is cast."""

    model: torch.nn.Module
    device: torch.device
    autocast_dtype: torch.dtype | None
    """bfloat16 when one process runs bf16 mixed precision (FSDP casts by its own policy)."""
    lora: bool


def _load(model_dir: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)


def policy_model(lc, model_dir: str, device: torch.device, sharded: bool) -> Built:
    """The model `lc` (a LearnerConfig) trains, float32 master weights, ready for its optimizer."""
    model = _load(model_dir, torch.float32)
    if lc.activation_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:  # transformers before the rename (what vLLM's pins may install)
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = lc.lora.rank > 0
    if lora:
        from relayrl.learner.lora import add_adapters

        model = add_adapters(model, lc.lora)
    model.train()
    bf16 = lc.precision == "bf16"
    if sharded:
        from relayrl.learner.distributed import shard

        shard(model, device, torch.bfloat16 if bf16 else None, lc.fsdp.reshard_after_forward)
        return Built(model, device, None, lora)
    return Built(model.to(device), device, torch.bfloat16 if bf16 else None, lora)


def reference(lc, model_dir: str, built: Built, sharded: bool) -> Reference | None:
    """The KL reference policy for `built`, or None when kl_beta is 0."""
    if lc.loss.kl_beta <= 0:
        return None
    if built.lora:
        return Reference(built.model, shared=True, autocast_dtype=built.autocast_dtype)
    on_gpu = built.device.type == "cuda" and not lc.ref_offload
    # its logprobs only enter the KL term: bf16 halves the copy on a GPU; the CPU keeps fp32 (fast there)
    ref = _load(model_dir, torch.bfloat16 if on_gpu else torch.float32).eval()
    ref.requires_grad_(False)
    if not on_gpu:
        return Reference(ref)
    if sharded:
        from relayrl.learner.distributed import shard

        shard(ref, built.device, None, True)
        return Reference(ref)
    return Reference(ref.to(built.device))
