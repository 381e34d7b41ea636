"""`RunConfig` — a whole run in one YAML file, and reading it with errors a person can act on.

Every service reads the same file; the single-machine launcher fills in the addresses it assigns.
`RunConfig.load` turns every mistake (broken YAML, a misspelt or moved key, a wrong type, a value
out of range) into a `ConfigError` of one line per problem naming the file and the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from relayrl.config.base import Section
from relayrl.config.errors import ConfigError, describe
from relayrl.config.eval import EvalConfig
from relayrl.config.learner import LearnerConfig
from relayrl.config.model import ModelConfig
from relayrl.config.moved import engine_as_string
from relayrl.config.queue import QueueConfig, RedisQueue
from relayrl.config.reward import RewardConfig
from relayrl.config.rollout import RolloutConfig
from relayrl.config.task import TaskConfig
from relayrl.config.tracking import TrackingConfig


class RunConfig(Section):
    """A whole run; `relayrl train CONFIG` reads one of these from YAML."""

    run: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name; the Redis key prefix `relayrl:{run}:` (runs can share a Redis)."""
    mode: Literal["async", "sync"] = "async"
    """async: generation, rewards and training overlap under the staleness bound. sync: the baseline in lock-step: the learner admits the next batch only when every group of the last one is consumed (generate, wait for every reward, train)."""
    model: ModelConfig = ModelConfig()
    """The policy."""
    task: TaskConfig = TaskConfig()
    """The prompt source."""
    queue: QueueConfig = RedisQueue()
    """The replay queue backend."""
    rollout: RolloutConfig = RolloutConfig()
    """The rollout actors."""
    reward: RewardConfig = RewardConfig()
    """The reward service."""
    learner: LearnerConfig = LearnerConfig()
    """The learner."""
    tracking: TrackingConfig = TrackingConfig()
    """Experiment trackers (TensorBoard, W&B, MLflow) the learner logs to."""
    eval: EvalConfig = EvalConfig()
    """Held-out evaluation during training."""

    @model_validator(mode="after")
    def _positions_fit(self) -> RunConfig:
        if self.model.path is None and self.rollout.sampling.max_new_tokens >= self.model.tiny.max_position_embeddings:
            raise ValueError("rollout.sampling.max_new_tokens must be below model.tiny.max_position_embeddings")
        return self

    @classmethod
    def parse(cls, data: object, source: str | Path = "<config>") -> RunConfig:
        """Validate a mapping (what a YAML file holds); ConfigError names every problem."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(source, [f"expected a mapping of sections at the top level, got {type(data).__name__}"])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = describe(exc, cls)
            if old_engine := engine_as_string(data):  # one clear line instead of the union's complaints
                problems = [old_engine, *(p for p in problems if not p.startswith("rollout.engine"))]
            raise ConfigError(source, problems) from None

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML file; ConfigError says which file, key and why."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(path, [f"cannot read: {exc.strerror or exc}"]) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            raise ConfigError(path, [f"{where}invalid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
        return cls.parse(data, path)

    def dump(self, path: str | Path) -> None:
        """Write the resolved config as YAML (the launcher hands it to each service)."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
