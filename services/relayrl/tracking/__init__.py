"""Experiment tracking: the learner's figures in TensorBoard, Weights & Biases and MLflow.

`base` holds the one interface (`Tracker`) and the fan-out the learner calls (`Trackers`, on a
background thread); `backends` the three implementations. Which ones a run uses is `tracking:`
in its config (`relayrl.config.tracking`). Their packages are optional extras: `require` (cheap,
no import) names the extra to install before a run starts, so a missing package is one line, not
a learner dying minutes later.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from relayrl.tracking.base import MissingExtra, Tracker, Trackers

EXTRAS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}
"""backend → (the module it imports, the relayrl extra that installs it)."""


def require(backends: list[str]) -> None:
    """Raise MissingExtra naming the extra to install for the first backend whose package is missing."""
    for backend in backends:
        module, extra = EXTRAS[backend]
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(f"tracking backend {backend} needs the {module} package: "
                               f"pip install 'relayrl[{extra}]'")


def make_trackers(cfg, out: Path, run: str) -> Trackers:
    """The trackers `cfg` (a `TrackingConfig`) names, writing under `out`; run name: `cfg.run_name` or `run`."""
    require(cfg.backends)
    from relayrl.tracking import backends as b

    out = Path(out)
    name = cfg.run_name or run
    made: list[Tracker] = []
    for backend in cfg.backends:
        if backend == "tensorboard":
            made.append(b.TensorBoardTracker(out / "tensorboard"))
        elif backend == "wandb":
            made.append(b.WandbTracker(out, cfg.project, name, cfg.wandb_mode))
        else:
            made.append(b.MlflowTracker(cfg.mlflow_uri or (out / "mlruns").resolve().as_uri(), cfg.project, name))
    return Trackers(made)


__all__ = ["EXTRAS", "MissingExtra", "Tracker", "Trackers", "make_trackers", "require"]
