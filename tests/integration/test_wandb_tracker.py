"""The W&B tracker offline (no network): the run under OUT/wandb loads back in wandb's own reader of
offline runs with every step's scalars and histograms, the config, the sample table and the
held-out series on its own x axis. (wandb spawns its wandb-core service: an integration test.)"""

from __future__ import annotations

from relayrl.tracking import Trackers
from relayrl.tracking.backends import WandbTracker
from tests.tracker_readers import read_wandb
from tests.unit.tracking.test_trackers import log_a_run


def test_an_offline_wandb_run_loads_back_in_wandbs_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "")  # never a login, never the network
    log_a_run(Trackers([WandbTracker(tmp_path, "relayrl", "t", "offline")]))
    got = read_wandb(tmp_path)
    assert got["run"].display_name == "t" and got["run"].project == "relayrl"
    assert got["config"]["learner"]["loss"]["algorithm"] == "dapo"
    steps = [row for row in got["history"] if "reward/mean" in row]
    assert [(row["_step"], row["reward/mean"]) for row in steps] == [(s, s / 10) for s in range(1, 6)]
    assert all(row["length/distribution/_type"] == "histogram" for row in steps)  # nested keys, joined by /
    table = next(row for row in got["history"] if "samples/_type" in row)
    assert table["samples/_type"] == "table-file" and table["samples/nrows"] == 1 and table["samples/ncols"] == 4
    evals = [row for row in got["history"] if "eval/task/pass_at_1" in row]
    assert [(row["eval/version"], row["eval/task/pass_at_1"]) for row in evals] == [(3, 0.25)]
