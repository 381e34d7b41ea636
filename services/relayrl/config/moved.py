"""Keys that moved when the configuration was grouped into sections (and when the task's generator
became `task.source`): an old file gets an error that names each key's new place instead of a bare
"extra inputs are not permitted"."""

from __future__ import annotations

from typing import Any

_LEARNER = {
    **{k: f"learner.optim.{k}" for k in ("lr", "weight_decay", "grad_clip", "lr_warmup_steps")},
    **{k: f"learner.loss.{k}" for k in ("algorithm", "clip_eps", "clip_eps_high", "kl_beta", "kl_estimator", "adv_eps",
                                        "loss_agg", "dynamic_sampling", "overlong_buffer", "overlong_penalty",
                                        "objective", "tis_cap")},
    **{k: f"learner.weights.{k}" for k in ("wire_dtype", "chunk_bytes", "keep_versions")},
    "checkpoint_every": "learner.checkpoint.every",
}
_SWE = {k: f"reward.swe.limits.{k}" for k in ("memory_mb", "cpu_s", "address_space_mb", "tmpfs_mb")}
_ROLLOUT = {
    "vllm": "rollout.engine (a section with `type: vllm` and the vLLM options)",
    "torch_threads": "rollout.engine.torch_threads (with `type: transformers`)",
}

_TASK = {
    "name": "task.source.name (in `source: {type: procedural, name: ...}`; name: reasoning_gym is "
            "`source: {type: reasoning_gym, dataset: ...}`)",
    "num_digits": "task.source.num_digits (with `type: procedural`)",
    "dataset": "task.source.dataset (with `type: reasoning_gym`)",
    "dataset_options": "task.source.options (with `type: reasoning_gym`)",
}

MOVED: dict[str, str] = {
    **{f"learner.{k}": v for k, v in _LEARNER.items()},
    **{f"task.{k}": v for k, v in _TASK.items()},
    **{f"reward.swe.{k}": v for k, v in _SWE.items()},
    **{f"rollout.{k}": v for k, v in _ROLLOUT.items()},
}
"""Old dotted key -> where it lives now."""


def moved_to(path: str) -> str | None:
    """Where the old dotted key `path` lives now; None when it never moved."""
    return MOVED.get(path)


def engine_as_string(data: Any) -> str | None:
    """The message for an old `rollout.engine: vllm` (a string, now a section); None otherwise."""
    rollout = data.get("rollout") if isinstance(data, dict) else None
    engine = rollout.get("engine") if isinstance(rollout, dict) else None
    if not isinstance(engine, str):
        return None
    return (f"rollout.engine: is a section now; write `engine: {{type: {engine}}}` (the keys of rollout.vllm "
            "and rollout.torch_threads go inside it)")
