"""LoRA on the learner (the `peft` library): adding adapters, and the tensors that leave the learner.

Only the adapters train, so only they are published: each adapted module `M` (its Hugging Face
name, e.g. `model.layers.0.self_attn.q_proj`) travels as `M.lora_A.weight` and `M.lora_B.weight`
with PEFT's scaling (alpha / r) folded into B, so an actor's merged weight is exactly
`W + B @ A` (`relayrl.weights.lora`). Checkpoints keep the adapter in PEFT's own format (what
`PeftModel.from_pretrained` loads) and a merged Hugging Face model beside it.

Every function here yields `(name, shape, dtype, get)` entries whose `get()` materialises one full
tensor (under FSDP a collective all-gather), so the callers gather one tensor at a time and every
rank walks the same entries in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from relayrl.learner.distributed import full
from relayrl.weights.lora import adapter_names

Entry = tuple[str, tuple[int, ...], torch.dtype, Callable[[], torch.Tensor]]
PEFT_PREFIX = "base_model.model."
ADAPTER = "default"


def add_adapters(model, cfg):
    """`model` with LoRA adapters per `cfg` (a LoraConfig); the base weights frozen."""
    from peft import LoraConfig, get_peft_model

    targets = cfg.target_modules
    return get_peft_model(model, LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets))


def _layers(model) -> Iterator[tuple[str, object]]:
    """(Hugging Face module name, LoRA layer) of every adapted module, in module order."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and ADAPTER in module.lora_A:
            yield name.removeprefix(PEFT_PREFIX), module


def _entry(name: str, param, scale: float = 1.0) -> Entry:
    return name, tuple(param.shape), param.dtype, (lambda: full(param.detach()) * scale if scale != 1.0
                                                   else full(param.detach()))


def published(model) -> list[Entry]:
    """The adapters on the wire: A as trained, B scaled by alpha / r."""
    out = []
    for name, layer in _layers(model):
        a_name, b_name = adapter_names(name)
        out.append(_entry(a_name, layer.lora_A[ADAPTER].weight))
        out.append(_entry(b_name, layer.lora_B[ADAPTER].weight, layer.scaling[ADAPTER]))
    return out


def peft_entries(model) -> list[Entry]:
    """The adapters as PEFT saves them (`base_model.model.M.lora_A.weight`, B unscaled)."""
    out = []
    for name, layer in _layers(model):
        out.append(_entry(f"{PEFT_PREFIX}{name}.lora_A.weight", layer.lora_A[ADAPTER].weight))
        out.append(_entry(f"{PEFT_PREFIX}{name}.lora_B.weight", layer.lora_B[ADAPTER].weight))
    return out


def merged(model) -> list[Entry]:
    """The base model's tensors under their Hugging Face names, each adapted weight merged
    (W + scale * B @ A, in float32): what a plain Hugging Face directory holds."""
    layers = dict(_layers(model))
    out = []
    seen: set[int] = set()
    for name, param in model.get_base_model().named_parameters():
        if ".lora_" in name:
            continue
        if id(param) in seen:
            continue
        seen.add(id(param))
        module, _, leaf = name.rpartition(".")
        if module.endswith(".base_layer"):
            module = module.removesuffix(".base_layer")
            layer = layers.get(module)
            if layer is not None and leaf == "weight":
                out.append((f"{module}.weight", tuple(param.shape), param.dtype, _merge(param, layer)))
                continue
        out.append((f"{module}.{leaf}", tuple(param.shape), param.dtype, lambda p=param: full(p.detach())))
    return out


def _merge(weight, layer) -> Callable[[], torch.Tensor]:
    def get() -> torch.Tensor:
        a = full(layer.lora_A[ADAPTER].weight.detach()).float()
        b = full(layer.lora_B[ADAPTER].weight.detach()).float()
        return full(weight.detach()).float() + layer.scaling[ADAPTER] * (b @ a)

    return get
