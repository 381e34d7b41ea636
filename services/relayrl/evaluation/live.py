"""The evaluator that follows a training run: `relayrl serve evaluator`.

It watches the announced policy version in Redis like a rollout actor does and, every
`eval.every_steps` versions (and at the run's last version), pulls the newest weights through
`relayrl.weights.make_weight_source` (from the learner or a relay), samples k completions for each
of n problems of every configured dataset (`runner.run_dataset`: the sampler and scorers of
`relayrl eval`), and appends one JSON record per dataset to the run's eval stream in Redis, which
the learner turns into OUT/eval.jsonl, tracker series and Prometheus gauges
(`relayrl.learner.evalfeed`). Training never waits for it. Started while the run is still in its
first every_steps versions, it first evaluates the weights it was started with (`--model`, the
run's initial policy): version 0, the untrained baseline.

Why a process of its own rather than spare actor capacity: an evaluation must see one version
for all its k·n samples, while an actor switches versions between (and within) generations; an
actor would need a second queue and a second kind of work, and every evaluation would take its
batch away from training. An evaluator process can sit on a device of its own, on a shared CPU it
lowers its priority (`eval.nice`) so training goes first, and it can fall behind without holding
anything up: it always evaluates the newest version, skipping those it had no time for. Its cost
is one more copy of the model in memory. Results are JSON (a dict of figures per dataset), not a
proto: they go from this process to the learner's files and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import threading
import time

from relayrl.config import RunConfig
from relayrl.evaluation.runner import Suite, renderer, run_dataset
from relayrl.replay import ReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.retry import retry, run_until_stopped
from relayrl.weights.source import WeightSource

log = logging.getLogger("relayrl.evaluator")


class LiveEvaluator:
    """Evaluates the versions a run publishes, as they come, and reports them through Redis."""

    def __init__(self, cfg: RunConfig, queue: ReplayQueue, weights: WeightSource, engine, steps: int | None = None,
                 name: str = "evaluator") -> None:
        """`engine`: a `TransformersEngine` of the run's model architecture (its weights are
        replaced by each version pulled); `steps`: the run's last version (default learner.steps)."""
        if cfg.eval.every_steps < 1:
            raise ValueError("eval.every_steps is 0: evaluation is off in this config")
        self.cfg, self.queue, self.weights, self.engine, self.name = cfg, queue, weights, engine, name
        self.keys = StreamKeys(cfg.run)
        self.final = steps or cfg.learner.steps
        self.suite = Suite(cfg.eval.datasets, cfg.eval.n, cfg.eval.seed, task=cfg.task, reward=cfg.reward)
        self.evaluated: int | None = None
        """The version evaluated last (None: none yet)."""
        self.stop = threading.Event()

    def announced(self) -> int:
        value = self.queue.get_value(self.keys.version)
        return -1 if value is None else int(value)

    def went_back(self, announced: int) -> None:
        """A restarted learner resumed an older checkpoint (a new epoch): the versions after it are
        gone, so the blocks of every_steps count from there again."""
        if self.evaluated is not None and 0 <= announced < self.evaluated:
            log.info("%s: the learner went back to version %d (a restart); following it", self.name, announced)
            self.evaluated = announced

    def due(self, announced: int) -> bool:
        """Whether the `announced` version (or a newer one) should be evaluated now: the first
        one seen, then the first in each new block of every_steps versions, and the last."""
        if announced < 0:
            return False
        if self.evaluated is None:
            return True
        if announced <= self.evaluated:
            return False
        every = self.cfg.eval.every_steps
        return announced >= self.final or announced // every > self.evaluated // every

    def pull(self) -> tuple[int, str]:
        """Load the newest version into the engine; its number and learner epoch."""
        fetched = self.weights.fetch(-1)
        self.engine.load_weights(fetched.state, fetched.version)
        return fetched.version, fetched.epoch

    def evaluate(self, version: int, epoch: str = "") -> list[dict]:
        """Evaluate the engine's weights (policy `version` of learner `epoch`; "" for the initial
        policy, which every epoch shares) on every dataset; one record per dataset."""
        ec = self.cfg.eval
        max_new = ec.max_new_tokens or self.cfg.rollout.sampling.max_new_tokens
        records = []
        for dataset in self.suite.datasets:
            t0, cpu0 = time.perf_counter(), time.process_time()
            render = renderer(dataset.name, self.engine.tokenizer, self.cfg.task.chat, self.cfg.task)
            figures = run_dataset(self.engine, dataset, ec.k, max_new, ec.temperature, ec.top_p, ec.seed,
                                  ec.batch_prompts, render)
            records.append({"version": version, "epoch": epoch, "dataset": dataset.name, **figures,
                            "eval_s": round(time.perf_counter() - t0, 3),
                            "cpu_s": round(time.process_time() - cpu0, 3), "evaluator": self.name,
                            "time": round(time.time(), 3)})
            log.info("%s: version %d %s pass@1 %.3f cons@k %.3f format %.3f (%.1f s)", self.name, version,
                     dataset.name, figures["pass@1"], figures["cons@k"], figures["format"], records[-1]["eval_s"])
        self.evaluated = version
        return records

    def publish(self, records: list[dict]) -> None:
        for record in records:
            retry(lambda r=record: self.queue.put(self.keys.eval, json.dumps(r).encode()),
                  "evaluator: reporting a result", log)

    def step(self) -> bool:
        """Evaluate and report the newest version if one is due; True if it did."""
        announced = self.announced()
        self.went_back(announced)
        if self.evaluated is None and 0 <= announced < self.cfg.eval.every_steps:
            self.publish(self.evaluate(0))  # the initial policy, as loaded from --model
            return True
        if not self.due(announced):
            return False
        self.publish(self.evaluate(*self.pull()))
        return True

    def run(self, poll_s: float = 0.5) -> None:
        """Follow the run until `stop` is set. A transient failure (Redis or the learner away, a
        version evicted before it was pulled) is retried with backoff, as an actor does."""
        run_until_stopped(self.step, self.stop, self.name, log, idle_s=poll_s)

    def close(self) -> None:
        self.suite.close()


def main(config_path: str, redis_url: str | None, learner: str, model_dir: str, steps: int | None = None,
         name: str = "evaluator") -> None:
    """Entry of `relayrl serve evaluator`."""
    import signal

    from relayrl.replay import make_queue
    from relayrl.rollout.engine import TransformersEngine
    from relayrl.weights import make_weight_source

    cfg = RunConfig.load(config_path)
    engine = TransformersEngine(model_dir, threads=cfg.eval.threads)
    evaluator = LiveEvaluator(cfg, make_queue(cfg.queue, redis_url), make_weight_source(learner), engine, steps, name)
    # start-up at full priority (it overlaps the other services' start-up), then training first: on
    # a shared CPU the evaluator takes what is left
    os.nice(cfg.eval.nice)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: evaluator.stop.set())
    log.info("%s following run %s (every %d versions, datasets %s)", name, cfg.run, cfg.eval.every_steps,
             cfg.eval.datasets)
    try:
        evaluator.run()
    finally:
        evaluator.close()
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        log.info("%s: used %.1f CPU s in all (start-up included)", name, sum(u.ru_utime + u.ru_stime for u in usage))
