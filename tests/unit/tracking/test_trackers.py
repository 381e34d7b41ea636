"""The trackers behind one interface: what each writes, its own library reads back; a tracker that
fails fails the learner (not silently); a missing package is one line naming the extra.

(W&B spawns its wandb-core service: its test is tests/integration/test_wandb_tracker.py.)"""

from __future__ import annotations

import threading

import pytest

from relayrl.config import TrackingConfig
from relayrl.tracking import EXTRAS, MissingExtra, Tracker, Trackers, make_trackers, require
from relayrl.tracking.backends import MlflowTracker, TensorBoardTracker, flatten, markdown_table
from tests.tracker_readers import read_mlflow, read_tensorboard

CONFIG = {"run": "t", "learner": {"optim": {"lr": 0.001}, "loss": {"algorithm": "dapo"}}, "tracking": {"backends": []}}


def log_a_run(trackers: Trackers, steps: int = 5) -> None:
    trackers.log_config(CONFIG)
    for step in range(1, steps + 1):
        trackers.log_step(step, {"reward/mean": step / 10, "kl/ref": 0.01 * step},
                          {"length/distribution": [1.0, 2.0, float(step)], "staleness/distribution": []})
    trackers.log_table(steps, "samples", ["step", "prompt", "completion", "reward"],
                       [[steps, "what | is 2+2?", "<answer>4</answer>\nok", 1.0]])
    trackers.log_eval(3, {"eval/task/pass_at_1": 0.25, "eval/task/cons_at_k": 0.5})
    trackers.close()


def test_tensorboard_event_files_load_back_in_tensorboards_reader(tmp_path):
    log_a_run(Trackers([TensorBoardTracker(tmp_path / "tb")]))
    got = read_tensorboard(tmp_path / "tb")
    assert got["scalars"]["reward/mean"] == [(s, pytest.approx(s / 10)) for s in range(1, 6)]
    assert got["scalars"]["eval/task/pass_at_1"] == [(3, 0.25)]
    assert got["histograms"]["length/distribution"] == [1, 2, 3, 4, 5]
    assert "staleness/distribution" not in got["histograms"]  # nothing to bin: nothing logged
    assert "algorithm: dapo" in got["text"]["config"][0][1]
    (step, table), = got["text"]["samples"]
    assert step == 5 and "what \\| is 2+2?" in table and "<answer>4</answer>⏎ok" in table


def test_mlflow_file_store_run_loads_back_in_mlflows_client(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    log_a_run(Trackers([MlflowTracker(uri, "relayrl", "t")]))
    got = read_mlflow(uri)
    assert got["status"] == "FINISHED"
    assert got["metrics"]["reward/mean"] == [(s, pytest.approx(s / 10)) for s in range(1, 6)]
    assert got["metrics"]["eval/task/pass_at_1"] == [(3, 0.25)]
    assert got["metrics"]["length/distribution/max"][-1] == (5, 5.0)  # MLflow has no histograms: quantiles
    assert got["params"]["learner.loss.algorithm"] == "dapo" and got["params"]["learner.optim.lr"] == "0.001"
    assert got["params"]["tracking.backends"] == "[]"
    assert got["artifacts"] == ["config.json", "samples/step-000005.json"]


def test_make_trackers_builds_the_configured_backends_under_out(tmp_path):
    trackers = make_trackers(TrackingConfig(backends=["tensorboard", "mlflow"]), tmp_path, "run-a")
    log_a_run(trackers)
    assert [t.name for t in trackers.trackers] == ["tensorboard", "mlflow"]
    assert read_tensorboard(tmp_path / "tensorboard")["scalars"]["kl/ref"][-1][0] == 5
    assert read_mlflow((tmp_path / "mlruns").as_uri())["metrics"]["kl/ref"][-1][0] == 5


class Failing(Tracker):
    """A tracker whose disk is full at the second step."""

    name = "failing"

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.closed = threading.Event()

    def log_config(self, config):
        pass

    def log_step(self, step, scalars, histograms):
        if step == 2:
            raise OSError(28, "No space left on device")
        self.steps.append(step)

    def log_table(self, step, name, columns, rows):
        pass

    def log_eval(self, version, scalars):
        pass

    def close(self):
        self.closed.set()


def test_a_failing_tracker_fails_the_learner_instead_of_dropping_its_figures():
    tracker = Failing()
    trackers = Trackers([tracker])
    trackers.log_step(1, {}, {})
    trackers.log_step(2, {}, {})
    with pytest.raises(RuntimeError, match="an experiment tracker failed: .*No space left on device"):
        for step in range(3, 1000):  # the failure reaches the learner's thread at a following call
            trackers.log_step(step, {}, {})
            threading.Event().wait(0.001)
    trackers.close()
    assert tracker.steps == [1] and tracker.closed.is_set()


def test_close_raises_a_failure_that_no_later_call_saw():
    trackers = Trackers([Failing()])
    trackers.log_step(2, {}, {})
    with pytest.raises(RuntimeError, match="No space left"):
        trackers.close()


def test_a_missing_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(EXTRAS, "wandb", ("relayrl_no_such_module", "wandb"))
    with pytest.raises(MissingExtra) as info:
        require(["tensorboard", "wandb"])
    assert str(info.value) == ("tracking backend wandb needs the relayrl_no_such_module package: "
                               "pip install 'relayrl[wandb]'")
    require(["tensorboard", "mlflow"])  # installed here (scripts/setup.sh installs the tracking extra)


def test_helpers_flatten_the_config_and_escape_table_cells():
    assert flatten(CONFIG) == {"run": "t", "learner.optim.lr": "0.001", "learner.loss.algorithm": "dapo",
                               "tracking.backends": "[]"}
    assert markdown_table(["a", "b"], [["x|y", 0.123456]]) == "| a | b |\n|---|---|\n| x\\|y | 0.1235 |"
