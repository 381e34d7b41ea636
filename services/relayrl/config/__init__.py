"""Run configuration: one YAML file configures a whole run, every field documented.

Pydantic models only (no torch), so the CLI can parse and validate a config instantly. The run is
grouped in sections, one module each (`model`, `task`, `queue`, `rollout`, `reward` with
`sandbox`, `learner`, `tracking`, `eval`); backends are discriminated unions (`queue.type`,
`rollout.engine.type`). `RunConfig.load` reads a file with one-line errors (`errors`), and names
the new place of a key that moved (`moved`). Stream key names live with the queue (`relayrl.replay.keys`).
"""

from relayrl.config.agent import AgentConfig
from relayrl.config.errors import ConfigError
from relayrl.config.eval import EvalConfig
from relayrl.config.learner import (
    CheckpointConfig,
    FsdpConfig,
    LearnerConfig,
    LoraConfig,
    LossConfig,
    NcclConfig,
    OptimConfig,
    PublishConfig,
)
from relayrl.config.model import ModelConfig, TinyModelConfig
from relayrl.config.queue import MemoryQueue, QueueConfig, RedisQueue
from relayrl.config.reward import (
    CodeConfig,
    LaneConfig,
    LanesConfig,
    LatencyEmulation,
    RewardConfig,
    RewardWeights,
    SlowLaneConfig,
    SweConfig,
)
from relayrl.config.rollout import (
    EngineConfig,
    RayConfig,
    RolloutConfig,
    SamplingConfig,
    TransformersEngineConfig,
    VllmEngineConfig,
)
from relayrl.config.run import RunConfig
from relayrl.config.sandbox import SandboxConfig, SandboxLimits
from relayrl.config.task import ChatExample, TaskConfig
from relayrl.config.tracking import TrackingConfig

__all__ = [
    "AgentConfig", "ChatExample", "CheckpointConfig", "CodeConfig", "ConfigError", "EngineConfig", "EvalConfig",
    "FsdpConfig", "LaneConfig", "LanesConfig", "LatencyEmulation", "LearnerConfig", "LoraConfig", "LossConfig",
    "MemoryQueue", "ModelConfig", "NcclConfig", "OptimConfig", "PublishConfig",
    "QueueConfig", "RayConfig", "RedisQueue", "RewardConfig", "RewardWeights", "RolloutConfig", "RunConfig",
    "SamplingConfig", "SandboxConfig", "SandboxLimits", "SlowLaneConfig", "SweConfig", "TaskConfig",
    "TinyModelConfig", "TrackingConfig", "TransformersEngineConfig", "VllmEngineConfig",
]
