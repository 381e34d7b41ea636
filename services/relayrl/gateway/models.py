"""The gateway's response bodies: pydantic models, so /openapi.json describes every answer exactly
(schemathesis checks the live answers against it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. [\"query\", \"windw\"].")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="The kind of problem (extra_forbidden: a parameter the endpoint does not take).")
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrors(BaseModel):
    detail: list[ValidationProblem]


class Health(BaseModel):
    status: str = Field(description="`ok` when the gateway answers (and, for /readyz, Redis does).")


class LearnerStatus(BaseModel):
    """The learner's GetStatus."""

    version: int = Field(description="Newest policy version the learner published.")
    step: int = Field(description="Optimizer steps done.")
    groups_trained: int = Field(description="Scored groups trained on.")
    groups_dropped_stale: int = Field(description="Groups dropped as older than max_staleness versions.")
    prompts_admitted: int = Field(description="Prompts put on the prompts stream.")
    last_reward_mean: float = Field(description="Mean reward of the last training batch.")
    done: bool = Field(description="The learner finished its steps.")


class RewardServiceStatus(BaseModel):
    """The reward service's GetStatus."""

    groups_in_flight: int = Field(description="Groups accepted and not yet written to the scored-groups stream.")
    groups_scored: int = Field(description="Groups scored and written since the service started.")
    samples_scored: int = Field(description="Samples scored since the service started.")
    kinds: list[str] = Field(description="Task kinds the service has verifiers for.")


class ActorStatus(BaseModel):
    """One configured actor's GetStatus; the fields are null while it does not answer."""

    address: str = Field(description="host:port the gateway asked.")
    available: bool = Field(description="The actor answered within the deadline.")
    actor_id: str | None = None
    version: int | None = Field(None, description="Policy version the actor serves.")
    groups_generated: int | None = None
    tokens_generated: int | None = None


class ActorConsumer(BaseModel):
    """An actor as Redis sees it: a consumer of the prompts stream."""

    name: str = Field(description="Consumer name (the actor id).")
    leased: int = Field(description="Prompts it leased and has not had acknowledged.")
    idle_ms: int = Field(description="Milliseconds since it last read the stream.")


class QueueDepth(BaseModel):
    """One Redis stream of the run."""

    stream: str = Field(description="The Redis key.")
    consumer_group: str | None = Field(description="The group that consumes it; null for dead letters.")
    length: int = Field(description="Entries in the stream (acknowledged ones included until trimmed).")
    waiting: int = Field(description="Entries not yet delivered to the consumer group (its lag).")
    leased: int = Field(description="Entries delivered and not yet acknowledged (pending).")
    consumers: int = Field(description="Consumers the group has.")


class Admission(BaseModel):
    paused: bool = Field(description="True while the learner admits no new prompts.")


class Versions(BaseModel):
    published: int | None = Field(description="Version announced in Redis (`relayrl:{run}:version`); null before the first.")
    learner: int | None = Field(description="Version the learner reports; null when it does not answer.")
    actors: list[ActorStatus] = Field(description="Versions the configured actors serve.")
    max_lag: int | None = Field(description="Published version minus the oldest version an answering actor serves.")


class RewardSummary(BaseModel):
    samples: int = Field(description="Scored samples (infrastructure errors excluded).")
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None


class KindRewards(RewardSummary):
    passed: int = Field(alias="pass", description="Samples whose outcome was pass.")
    fail: int = Field(description="Samples whose outcome was fail (the model's fault).")
    infra_error: int = Field(description="Samples whose verifier hit an infrastructure error.")


class RewardStats(RewardSummary):
    window: int = Field(description="How many recent scored groups were asked for.")
    groups: int = Field(description="Scored groups found (at most window).")
    kinds: dict[str, KindRewards] = Field(description="The same, per task kind.")
    service: RewardServiceStatus | None = Field(description="The reward service's counters; null when it does not answer.")


class RunStatus(BaseModel):
    run: str = Field(description="Run name (the Redis key prefix).")
    paused: bool = Field(description="Prompt admission is paused.")
    published_version: int | None = Field(description="Version announced in Redis.")
    learner: LearnerStatus | None = Field(description="Null when the learner does not answer.")
    reward: RewardServiceStatus | None = Field(description="Null when the reward service does not answer.")
    queues: dict[str, QueueDepth] = Field(description="prompts, groups, swe (slow lane), dead (dead letters).")
    actors: list[ActorConsumer] = Field(description="Consumers of the prompts stream.")
    finished: bool = Field(False, description="The learner finished its steps (it says so, or the run directory holds "
                                              "the run's summary and Redis is gone).")
    summary: dict[str, float | int] | None = Field(None, description="OUT/summary.json of a finished local run, "
                                                                     "answered once its Redis is gone.")
