"""The learner's intake of held-out evaluation results: Redis stream in, OUT/eval.jsonl out.

The evaluator (`relayrl.evaluation.live`) runs beside training and appends one JSON record per
(version, dataset) to the run's eval stream (`relayrl:{run}:eval`). The learner owns the run's
output directory and its trackers, so it is the one that reads them: `poll` (once per step, never
blocking) leases what arrived, appends each record not seen before to OUT/eval.jsonl, sets the
held-out Prometheus gauges (`dynamics`) and acknowledges. Delivery is at-least-once (a learner
that dies between writing and acknowledging gets the record again), so records are keyed by
(version, dataset) and a repeat is dropped; the keys already in eval.jsonl survive a restart.

At the end of a run `wait_for` gives the evaluator time to report the final version, but only
when an evaluator has reported during this run: a cluster without one does not make the learner
wait.

A restarted learner is a new epoch continuing its newest checkpoint (`resumed_step`): the
versions after that checkpoint are gone. So eval.jsonl is cut back to the versions up to it (as
metrics.jsonl is), and a result is taken only when it evaluated this epoch's weights or a version
up to the checkpoint, which both lineages share (the initial policy, epoch "", among them); the
rest, evaluations of the lost versions still on the stream, are acknowledged and dropped.
Torch-free, tested on the in-memory queue.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from relayrl.learner import dynamics
from relayrl.replay import ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.retry import retry

log = logging.getLogger("relayrl.learner")

EVAL = "eval.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL file ([] when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class EvalFeed:
    """Leases evaluation records from the run's eval stream for one learner consumer."""

    def __init__(self, queue: ReplayQueue, run: str, out: Path, consumer: str = "learner-0", epoch: str = "",
                 resumed_step: int = 0) -> None:
        """`epoch`: this learner's lineage; `resumed_step`: the step (= version) of the checkpoint it
        continues (0: none), the last version it shares with a previous lineage."""
        self.queue, self.consumer, self.epoch, self.resumed_step = queue, consumer, epoch, resumed_step
        self.stream = StreamKeys(run).eval
        retry(lambda: queue.ensure_group(self.stream, StreamKeys.LEARNER), "learner: creating the eval group", log)
        self.path = Path(out) / EVAL
        kept = [r for r in read_jsonl(self.path) if r["version"] <= resumed_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.seen = {(r["version"], r["dataset"]) for r in kept}
        self.reported = False
        """Whether an evaluator has reported during this run (so one is there to wait for)."""
        self._file = open(self.path, "a")

    def _lease(self):
        own = self.queue.pending_for(self.stream, StreamKeys.LEARNER, self.consumer, count=256)
        return own or self.queue.lease(self.stream, StreamKeys.LEARNER, self.consumer, count=256)

    def poll(self) -> list[dict]:
        """The records that arrived since the last call, each (version, dataset) once; never blocks
        (beyond retrying while Redis is away)."""
        entries = retry(self._lease, "learner: reading evaluation results", log)
        new = []
        for entry in entries:
            record = json.loads(entry.payload)
            key = (record["version"], record["dataset"])
            if key in self.seen or not self.ours(record):
                continue
            self.seen.add(key)
            self._file.write(json.dumps(record) + "\n")
            new.append(record)
        if entries:
            self._file.flush()
            self.reported = True
            retry(lambda: self.queue.ack(self.stream, StreamKeys.LEARNER, [e.id for e in entries]),
                  "learner: acknowledging evaluation results", log)
            retry(lambda: self.queue.trim(self.stream), "learner: trimming the eval stream", log)
        for record in sorted(new, key=lambda r: r["version"]):
            dynamics.observe_eval(record)
        return new

    def ours(self, record: dict) -> bool:
        """Whether `record` evaluated weights of this lineage (this epoch's, or a version up to the
        checkpoint it continues)."""
        if record["version"] <= self.resumed_step or record.get("epoch", "") == self.epoch:
            return True
        log.info("learner: dropped the evaluation of version %d of another epoch", record["version"])
        return False

    def wait_for(self, version: int, timeout_s: float, poll_s: float = 0.5) -> list[dict]:
        """Poll until a record of `version` (or later) has arrived or `timeout_s` passed; all
        records received meanwhile. Returns at once when no evaluator has reported in this run."""
        got: list[dict] = []
        deadline = time.monotonic() + timeout_s
        while self.reported and not any(v >= version for v, _ in self.seen):
            if time.monotonic() >= deadline:
                log.warning("learner: no evaluation of version %d within %.0f s", version, timeout_s)
                break
            time.sleep(poll_s)
            got += self.poll()
        return got

    def close(self) -> None:
        self._file.close()
