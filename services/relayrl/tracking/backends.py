"""The three trackers: TensorBoard, Weights & Biases and MLflow, each behind `base.Tracker`.

Each imports its package when it is built (they are optional extras). What each writes:

- TensorBoard (`torch.utils.tensorboard`, event files under OUT/tensorboard): scalars, histograms,
  the config and the sample tables as text (markdown), evaluations as scalars at their version.
- W&B (`wandb`, offline by default: OUT/wandb/offline-run-*, `wandb sync` uploads it later):
  scalars and `wandb.Histogram`s at the learner step, the config as the run's config, tables as
  `wandb.Table`, evaluations against their own x axis `eval/version` (W&B's step only grows).
- MLflow (`MlflowClient`, a file store at OUT/mlruns by default): scalars as metrics at their
  step, distributions as their min/p50/p90/max (MLflow has no histograms), the config flattened
  into params and whole as `config.json`, tables as JSON artifacts, evaluations at their version.
  MLflow 3 keeps the file store "in maintenance mode" behind MLFLOW_ALLOW_FILE_STORE, which is set
  for file URIs; a `sqlite:///` URI needs SQLAlchemy and took 17 s to create its schema here.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from relayrl.tracking.base import Tracker


def _md_cell(value) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", "⏎")


def markdown_table(columns: list[str], rows: list[list]) -> str:
    """A markdown table (TensorBoard's text plugin renders it); pipes escaped, newlines shown as ⏎."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = Path(logdir)
        self.writer = SummaryWriter(log_dir=str(self.logdir), flush_secs=10)

    def log_config(self, config: dict) -> None:
        import yaml

        text = yaml.safe_dump(config, sort_keys=False)
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def log_step(self, step, scalars, histograms) -> None:
        import numpy as np

        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        for key, values in histograms.items():
            if values:
                self.writer.add_histogram(key, np.asarray(values, dtype=np.float64), step)

    def log_table(self, step, name, columns, rows) -> None:
        self.writer.add_text(name, markdown_table(columns, rows), step)

    def log_eval(self, version, scalars) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, version)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, out: Path, project: str, run_name: str, mode: str) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=project, name=run_name, dir=str(out), mode=mode, reinit="create_new",
                              settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
        self.run.define_metric("eval/version")
        self.run.define_metric("eval/*", step_metric="eval/version")

    def log_config(self, config: dict) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_step(self, step, scalars, histograms) -> None:
        data: dict = dict(scalars)
        data.update({key: self.wandb.Histogram(values) for key, values in histograms.items() if values})
        self.run.log(data, step=step)

    def log_table(self, step, name, columns, rows) -> None:
        self.run.log({name: self.wandb.Table(columns=columns, data=rows)}, step=step)

    def log_eval(self, version, scalars) -> None:
        self.run.log({"eval/version": version, **scalars})  # at the current step, against eval/version

    def close(self) -> None:
        self.run.finish()
        # finish() returns before wandb-core has written the run's transaction log; teardown waits
        # for the service to exit, so OUT/wandb is complete when the learner is done
        self.wandb.teardown()


_MLFLOW_NAME = re.compile(r"[^\w/.\- :]")
"""Characters MLflow refuses in metric and param names."""


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config → {"learner.optim.lr": "0.001", ...} (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value) if not isinstance(value, str) else value
    return out


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, uri: str, experiment: str, run_name: str) -> None:
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id

    def _metrics(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_MLFLOW_NAME.sub("_", k), float(v), now, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def log_config(self, config: dict) -> None:
        from mlflow.entities import Param

        params = [Param(_MLFLOW_NAME.sub("_", k), v[:6000]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):  # MLflow's batch limit for params
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.client.log_dict(self.run_id, config, "config.json")

    def log_step(self, step, scalars, histograms) -> None:
        import numpy as np

        figures = dict(scalars)
        for key, values in histograms.items():
            if values:
                v = np.asarray(values, dtype=np.float64)
                figures.update({f"{key}/min": v.min(), f"{key}/p50": np.quantile(v, 0.5),
                                f"{key}/p90": np.quantile(v, 0.9), f"{key}/max": v.max()})
        self._metrics(step, figures)

    def log_table(self, step, name, columns, rows) -> None:
        self.client.log_dict(self.run_id, {"columns": columns, "data": rows}, f"{name}/step-{step:06d}.json")

    def log_eval(self, version, scalars) -> None:
        self._metrics(version, scalars)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
