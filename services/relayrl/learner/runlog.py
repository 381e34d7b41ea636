"""The learner's run log: the files under OUT that say what the run did, step by step, and the
experiment trackers that show it.

- `metrics.jsonl`: one record per optimizer step (step, version, groups, wait/train/wall seconds,
  weight-sync seconds, tokens/s, drops by reason so far and the update's statistics), what
  `relayrl train`'s summary, `relayrl report`, the benchmarks and people read.
- `ledger.jsonl`: per step, the ids of the groups trained in it. A crash can undo steps that no
  checkpoint holds; this file still lists them, so a test or an operator can check that their
  groups were trained again after the resume.
- `samples.jsonl`: every `tracking.samples_every` steps (and at step 1), a few completions with
  their prompt and reward, the report's "early vs late".
- `eval.jsonl` (`evalfeed`): the held-out evaluations, polled once per step.
- `learner-status.json`: the final counters, written when the run ends.

Each step's record also goes to the configured trackers (`relayrl.tracking`), its keys grouped for
their UIs (`tracker_name`), with the response lengths and the staleness of the batch as
distributions. A resumed run first cuts `metrics.jsonl` back to the step it resumed from, so the
steps the crash undid, trained again, are not listed twice. The ledger keeps them (that is its
point). This part knows nothing of queues or models: it writes what it is given.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from relayrl.wire import common_pb2

METRICS = "metrics.jsonl"
LEDGER = "ledger.jsonl"
SAMPLES = "samples.jsonl"
STATUS = "learner-status.json"

_NAMES = [(re.compile(pattern), name) for pattern, name in (
    (r"reward_mean", "reward/mean"), (r"shaped_reward_mean", "reward/shaped"), (r"reward_(\w+)_mean", r"reward/\1"),
    (r"response_length_(\w+)", r"length/\1"), (r"response_clip_frac", "length/clip_frac"),
    (r"clip_frac", "clip/total"), (r"clip_frac_(\w+)", r"clip/\1"), (r"tis_clip_frac", "clip/tis"),
    (r"kl", "kl/ref"), (r"mismatch_kl(\w*)", r"kl/mismatch\1"), (r"staleness_(\w+)", r"staleness/\1"),
    (r"dropped_(\w+)", r"drops/\1"), (r"(wait_s|train_s|wall_s|weight_sync_s)", r"time/\1"),
    (r"(tokens|tokens_per_s|groups)", r"throughput/\1"), (r"(loss|entropy|grad_norm|lr|adv_abs_mean)", r"policy/\1"),
    (r"(ess|is_weight_\w+|ratio_mean)", r"offpolicy/\1"))]


def tracker_name(key: str) -> str:
    """A record key as trackers show it, grouped by what it is: reward_accuracy_mean →
    reward/accuracy, response_length_max → length/max, kl → kl/ref, dropped_stale → drops/stale;
    anything else train/<key>."""
    for pattern, name in _NAMES:
        if m := pattern.fullmatch(key):
            return m.expand(name)
    return f"train/{key}"


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records of `path` after `step` (those of steps a crash undid)."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def sample_rows(groups: list[common_pb2.Group], n: int) -> list[dict]:
    """The first sample of each of the first `n` groups: prompt, completion, reward and components."""
    rows = []
    for g in groups[:n]:
        if not g.samples:
            continue
        s = g.samples[0]
        score = g.scores[0] if g.scores else None
        rows.append({"prompt": g.prompt.text, "completion": s.text, "reward": score.reward if score else None,
                     **({k: v for k, v in score.components.items()} if score else {}),
                     "version": min(s.versions, default=-1)})
    return rows


class RunLog:
    """Appends to the files under OUT and the trackers; writes OUT/learner-status.json at the end."""

    def __init__(self, out: Path, resumed_step: int | None = None, trackers=None, config: dict | None = None,
                 evals=None, samples_every: int = 0, samples_per_step: int = 4) -> None:
        """Open the logs under `out` (created); `resumed_step`: the step of the checkpoint this run
        resumed from, whose later metrics go. `trackers`: a `relayrl.tracking.Trackers` (given
        `config`, the resolved run config, once); `evals`: an `evalfeed.EvalFeed` polled each step."""
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        if resumed_step is not None:
            truncate_metrics(self.out / METRICS, resumed_step)
        self._metrics = open(self.out / METRICS, "a")
        self._ledger = open(self.out / LEDGER, "a")
        self._samples = open(self.out / SAMPLES, "a")
        self.trackers, self.evals = trackers, evals
        self.samples_every, self.samples_per_step = samples_every, samples_per_step
        if trackers is not None and config is not None:
            trackers.log_config(config)

    def trained(self, step: int, group_ids: list[str]) -> None:
        """Step `step` trained the groups `group_ids`."""
        self._ledger.write(json.dumps({"step": step, "trained": group_ids}) + "\n")
        self._ledger.flush()

    def step(self, step: int, version: int, groups: int, wait_s: float, train_s: float, wall_s: float,
             stats: dict, batch: list[common_pb2.Group] | None = None) -> dict:
        """Append the record of one step (seconds rounded) and return it; `batch`: the groups
        trained (their lengths, staleness and samples go to the trackers and samples.jsonl)."""
        record = {"step": step, "version": version, "groups": groups, "wait_s": round(wait_s, 4),
                  "train_s": round(train_s, 4), "wall_s": round(wall_s, 3), **stats}
        if "tokens" in stats and wait_s + train_s > 0:
            record["tokens_per_s"] = round(stats["tokens"] / (wait_s + train_s), 1)
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        batch = batch or []
        if self.samples_every and (step == 1 or step % self.samples_every == 0) and batch:
            self._log_samples(step, sample_rows(batch, self.samples_per_step))
        if self.trackers is not None:
            scalars = {tracker_name(k): float(v) for k, v in record.items()
                       if k not in ("step", "version") and isinstance(v, int | float) and not isinstance(v, bool)}
            histograms = {"length/distribution": [float(len(s.completion_token_ids)) for g in batch for s in g.samples],
                          "staleness/distribution": [float(v) for v, n in stats.get("staleness_counts", {}).items()
                                                     for _ in range(n)]}
            self.trackers.log_step(step, scalars, histograms)
        if self.evals is not None:
            self._log_evals(self.evals.poll())
        return record

    def _log_samples(self, step: int, rows: list[dict]) -> None:
        for row in rows:
            self._samples.write(json.dumps({"step": step, **row}) + "\n")
        self._samples.flush()
        if self.trackers is not None and rows:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            self.trackers.log_table(step, "samples", ["step", *columns],
                                    [[step, *(row.get(c) for c in columns)] for row in rows])

    def _log_evals(self, records: list[dict]) -> None:
        if self.trackers is None:
            return
        for r in records:
            d = r["dataset"]
            self.trackers.log_eval(r["version"], {f"eval/{d}/pass_at_1": r["pass@1"], f"eval/{d}/cons_at_k": r["cons@k"],
                                                  f"eval/{d}/format": r["format"]})

    def close(self, status: dict, final_version: int | None = None, eval_timeout_s: float = 0.0) -> None:
        """The run is over: give the evaluator up to `eval_timeout_s` to report `final_version`,
        close the logs and trackers, write `status` to learner-status.json."""
        if self.evals is not None:
            if final_version is not None:
                self._log_evals(self.evals.wait_for(final_version, eval_timeout_s))
            self.evals.close()
        self._metrics.close()
        self._ledger.close()
        self._samples.close()
        (self.out / STATUS).write_text(json.dumps(status, indent=2) + "\n")
        if self.trackers is not None:
            self.trackers.close()


def open_runlog(cfg, out: Path, queue, consumer: str, resumed_step: int, epoch: str = "", rank: int = 0) -> RunLog:
    """The run log of a learner of `cfg` (a `RunConfig`) continuing step `resumed_step` as learner
    `epoch`: with the trackers it names and, when evaluation is on, the feed of evaluation results
    from `queue`. A torchrun follower (rank > 0) gets the plain files only: rank 0 alone tracks and
    reads evaluations."""
    if rank > 0:
        return RunLog(out, resumed_step)
    from relayrl.learner.evalfeed import EvalFeed
    from relayrl.tracking import make_trackers

    trackers = make_trackers(cfg.tracking, out, cfg.run) if cfg.tracking.backends else None
    evals = EvalFeed(queue, cfg.run, out, consumer, epoch, resumed_step) if cfg.eval.every_steps else None
    return RunLog(out, resumed_step, trackers, cfg.model_dump(mode="json"), evals, cfg.tracking.samples_every,
                  cfg.tracking.samples_per_step)
