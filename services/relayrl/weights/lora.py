"""LoRA adapters on the wire, and merging them into an engine's weights on load.

A LoRA learner publishes only its adapters (`learner/lora.py`): for each adapted module `M`
(its Hugging Face name, e.g. `model.layers.0.self_attn.q_proj`) the tensors `M.lora_A.weight`
[r, in] and `M.lora_B.weight` [out, r], with the adapter's scaling already folded into B. A
payload whose every name ends so is an adapter; an engine that receives one computes
`M.weight = base M.weight + B @ A` (float32 math, cast to the engine's dtype) from the base
weights of the model it started from — read from that model's safetensors files (memory-mapped,
so the base costs no second copy in RAM) — and loads the merged weights as it loads a full
version. Versions replace each other: each merge starts from the base, never from the previous
merge, so no rounding accumulates.

Here the learner and the rollout side agree on the names and the arithmetic; neither imports the
other.
"""

from __future__ import annotations

import json
from pathlib import Path

A_SUFFIX = ".lora_A.weight"
B_SUFFIX = ".lora_B.weight"


def adapter_names(module: str) -> tuple[str, str]:
    """The wire names of module `module`'s A and B."""
    return module + A_SUFFIX, module + B_SUFFIX


def is_adapter(state: dict) -> bool:
    """True when `state` is a LoRA adapter payload (every name an A or a B)."""
    return bool(state) and all(k.endswith((A_SUFFIX, B_SUFFIX)) for k in state)


def modules(state: dict) -> dict[str, tuple]:
    """module name -> (A, B) of an adapter payload; ValueError when a module lacks one half."""
    out: dict[str, tuple] = {}
    for name in state:
        module = name.removesuffix(A_SUFFIX).removesuffix(B_SUFFIX)
        a, b = adapter_names(module)
        if a not in state or b not in state:
            raise ValueError(f"adapter payload: module {module!r} lacks {'A' if a not in state else 'B'}")
        out[module] = (state[a], state[b])
    return out


class BaseWeights:
    """The weights of a Hugging Face safetensors checkpoint, read lazily by name (memory-mapped)."""

    def __init__(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        index = model_dir / "model.safetensors.index.json"
        if index.exists():
            self._where = {k: model_dir / f for k, f in json.loads(index.read_text())["weight_map"].items()}
        else:
            from safetensors import safe_open

            single = model_dir / "model.safetensors"
            with safe_open(str(single), framework="pt") as f:
                self._where = {k: single for k in f.keys()}

    def names(self) -> set[str]:
        return set(self._where)

    def get(self, name: str):
        """One tensor, as stored (KeyError when the checkpoint has no such tensor)."""
        from safetensors import safe_open

        with safe_open(str(self._where[name]), framework="pt") as f:
            return f.get_tensor(name)


def merge(base: BaseWeights, adapter: dict, dtype=None) -> dict:
    """The merged weight of every module the adapter touches: {`M.weight`: base + B @ A}, in
    `dtype` (default: the base tensor's). ValueError when a module is not in the base model or
    the shapes disagree."""
    out = {}
    for module, (a, b) in modules(adapter).items():
        name = module + ".weight"
        if name not in base.names():
            raise ValueError(f"adapter payload: {name!r} is not a weight of the base model")
        w = base.get(name)
        if tuple(w.shape) != (b.shape[0], a.shape[1]) or b.shape[1] != a.shape[0]:
            raise ValueError(f"adapter payload: {module!r} has A {tuple(a.shape)} and B {tuple(b.shape)}, "
                             f"the base weight {tuple(w.shape)}")
        out[name] = (w.float() + b.float() @ a.float()).to(dtype or w.dtype)
    return out
