"""`eval:` — held-out evaluation while the run trains.

Every `every_steps` versions an evaluator process (`relayrl serve evaluator`, started by the
single-machine launcher) pulls the newest weights from the learner like an actor does, samples
`k` completions for each of `n` problems of every dataset in `datasets`, and reports pass@1 over
the k samples, cons@k (majority vote) and format compliance. Results reach the learner through
Redis and land in OUT/eval.jsonl, the trackers and Prometheus. Training never waits for it; the
evaluator also evaluates version 0 (the untrained baseline) and the final version.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from relayrl.config.base import Section

DATASET = re.compile(r"^(task(:[A-Za-z0-9_]+)?|gsm8k|humaneval|rg:[A-Za-z0-9_.-]+)$")
"""The dataset names `relayrl.evaluation.datasets.load` knows (checked here, without importing it)."""


class EvalConfig(Section):
    """Evaluation during training (off while every_steps is 0)."""

    every_steps: int = Field(0, ge=0)
    """Evaluate the newest version every this many learner steps (and version 0 and the last); 0: no evaluator."""
    datasets: list[str] = Field(["task"], min_length=1)
    """Datasets as `relayrl eval --dataset` names them: task (the held-out stream of this run's task, prompted as in training), task:<name>, gsm8k, rg:<reasoning-gym name>, humaneval."""
    n: int = Field(64, ge=1)
    """Problems per dataset (the first n; the same ones at every evaluation)."""
    k: int = Field(4, ge=2)
    """Samples per problem: pass@1 is averaged over them, cons@k votes among them."""
    max_new_tokens: int | None = Field(None, ge=1)
    """Longest completion; null: rollout.sampling.max_new_tokens."""
    temperature: float = Field(0.6, gt=0)
    """Sampling temperature (R1 evaluates at 0.6)."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus mass (R1: 0.95)."""
    seed: int = 0
    """Seed of the problems (procedural datasets) and of sampling: every evaluation draws the same random numbers, so versions differ by their weights alone."""
    batch_prompts: int = Field(16, ge=1)
    """Problems sampled together in one batch."""
    threads: int = Field(1, ge=1)
    """torch CPU threads of the evaluator."""
    nice: int = Field(10, ge=0, le=19)
    """The evaluator lowers its CPU priority by this much (os.nice): on a shared CPU, training goes first."""
    final_timeout_s: float = Field(120.0, ge=0)
    """After its last step the learner waits up to this long for the last version's evaluation (only when an evaluator has reported during the run)."""

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, datasets: list[str]) -> list[str]:
        bad = [d for d in datasets if not DATASET.match(d)]
        if bad:
            raise ValueError(f"unknown datasets {bad}: use task, task:<name>, gsm8k, rg:<reasoning-gym name> or humaneval")
        return datasets
