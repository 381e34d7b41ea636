"""Reading back what the trackers wrote, with each library's own reader (for the tests).

- TensorBoard: `EventAccumulator` over the event files (what TensorBoard's server loads).
- W&B: `wandb.sdk.internal.datastore.DataStore` scanning the offline run's .wandb transaction log
  (what `wandb sync` uploads), each record a `wandb_internal_pb2.Record`.
- MLflow: `MlflowClient` on the file store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_tensorboard(logdir: Path) -> dict:
    """{"scalars": {tag: [(step, value)]}, "histograms": {tag: [step]}, "text": {tag: [(step, text)]}}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    text = {}
    for tag in tags["tensors"]:  # the text plugin stores strings as tensors
        tag_name = tag.removesuffix("/text_summary")
        text[tag_name] = [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)]
    return {"scalars": {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]},
            "histograms": {t: [e.step for e in acc.Histograms(t)] for t in tags["histograms"]},
            "text": text}


def read_wandb(out: Path) -> dict:
    """{"history": [row dict with JSON-decoded values], "config": {key: value}, "run": run record} of
    the one offline run under OUT/wandb."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    files = sorted(Path(out).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    store = datastore.DataStore()
    store.open_for_scan(str(files[0]))
    history, config, run = [], {}, None
    while (data := store.scan_data()) is not None:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif kind == "config":
            config.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                           for item in record.config.update})
        elif kind == "run":
            run = record.run
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    return {"history": history, "config": config, "run": run}


def read_mlflow(uri: str, experiment: str = "relayrl") -> dict:
    """The one run of `experiment`: {"status", "params", "metrics": {key: [(step, value)]}, "artifacts": [paths]}."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    metrics = {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
               for key in run.data.metrics}

    def walk(path=None):
        for item in client.list_artifacts(run.info.run_id, path):
            yield from walk(item.path) if item.is_dir else [item.path]

    return {"status": run.info.status, "params": run.data.params, "metrics": metrics, "artifacts": sorted(walk()),
            "run_id": run.info.run_id, "client": client}
