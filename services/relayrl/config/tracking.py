"""`tracking:` — experiment trackers the learner logs every step to: TensorBoard, Weights &
Biases (offline by default: no network needed, `wandb sync` uploads later) and MLflow (a local
file store by default), in any combination.

The section may be written as a bare list of backends (`tracking: [tensorboard, wandb]`), the
common case; the mapping form sets the rest. Each backend's package is an optional extra of
relayrl (`pip install 'relayrl[tensorboard]'`, `[wandb]`, `[mlflow]`); `relayrl.tracking` says
which one is missing before a run starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from relayrl.config.base import Section

Backend = Literal["tensorboard", "wandb", "mlflow"]


class TrackingConfig(Section):
    """Where the learner's figures go besides OUT/metrics.jsonl (a list of backends is shorthand for `backends`)."""

    backends: list[Backend] = []
    """Trackers to log to: any of tensorboard (OUT/tensorboard), wandb, mlflow; empty: none."""
    project: str = Field("relayrl", min_length=1)
    """W&B project and MLflow experiment name the run is logged under."""
    run_name: str | None = None
    """Name of the run in the trackers; null: the config's `run`."""
    samples_every: int = Field(50, ge=0)
    """Every this many steps, log a table of sample completions (prompt, completion, reward) to the trackers and OUT/samples.jsonl; 0: never."""
    samples_per_step: int = Field(4, ge=1, le=64)
    """Completions in each sample table (the first sample of as many groups)."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """offline: write the run under OUT/wandb (sync it later with `wandb sync`); online: stream to the W&B server (needs network and a login)."""
    mlflow_uri: str | None = None
    """MLflow tracking URI; null: a file store at OUT/mlruns (`mlflow ui --backend-store-uri OUT/mlruns`)."""

    @model_validator(mode="before")
    @classmethod
    def _list_is_backends(cls, data: object) -> object:
        if isinstance(data, list | str):
            return {"backends": [data] if isinstance(data, str) else data}
        return data

    @model_validator(mode="after")
    def _no_repeats(self) -> TrackingConfig:
        if len(set(self.backends)) != len(self.backends):
            raise ValueError(f"tracking.backends lists a backend twice: {self.backends}")
        return self
