"""The learner's run log: the files under OUT that say what the run did, step by step.

- `metrics.jsonl`: one record per optimizer step (step, version, groups, wait/train/wall seconds
  and the update's statistics), what `relayrl train`'s summary, the benchmarks and people read.
- `ledger.jsonl`: per step, the ids of the groups trained in it. A crash can undo steps that no
  checkpoint holds; this file still lists them, so a test or an operator can check that their
  groups were trained again after the resume.
- `learner-status.json`: the final counters, written when the run ends.

A resumed run first cuts `metrics.jsonl` back to the step it resumed from, so the steps the crash
undid, trained again, are not listed twice. The ledger keeps them (that is its point). This part
knows nothing of queues or models: it writes what it is given.
"""

from __future__ import annotations

import json
from pathlib import Path

METRICS = "metrics.jsonl"
LEDGER = "ledger.jsonl"
STATUS = "learner-status.json"


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records of `path` after `step` (those of steps a crash undid)."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


class RunLog:
    """Appends to OUT/metrics.jsonl and OUT/ledger.jsonl; writes OUT/learner-status.json at the end."""

    def __init__(self, out: Path, resumed_step: int | None = None) -> None:
        """Open the logs under `out` (created); `resumed_step`: the step of the checkpoint this run
        resumed from, whose later metrics go."""
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        if resumed_step is not None:
            truncate_metrics(self.out / METRICS, resumed_step)
        self._metrics = open(self.out / METRICS, "a")
        self._ledger = open(self.out / LEDGER, "a")

    def trained(self, step: int, group_ids: list[str]) -> None:
        """Step `step` trained the groups `group_ids`."""
        self._ledger.write(json.dumps({"step": step, "trained": group_ids}) + "\n")
        self._ledger.flush()

    def step(self, step: int, version: int, groups: int, wait_s: float, train_s: float, wall_s: float,
             stats: dict) -> dict:
        """Append the record of one step (seconds rounded) and return it."""
        record = {"step": step, "version": version, "groups": groups, "wait_s": round(wait_s, 4),
                  "train_s": round(train_s, 4), "wall_s": round(wall_s, 3), **stats}
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        return record

    def close(self, status: dict) -> None:
        """The run is over: close the logs and write `status` to learner-status.json."""
        self._metrics.close()
        self._ledger.close()
        (self.out / STATUS).write_text(json.dumps(status, indent=2) + "\n")
