"""Settings of the gateway (the control plane): where the run's Redis and services are.

Pydantic settings, so every field can also come from the environment (`RELAYRL_GATEWAY_*`; the
Helm chart and docker-compose set them that way); the auth token comes from
`RELAYRL_AUTH_TOKEN`, which the chart fills from a Secret. Torch-free and gRPC-free, so the CLI
parses it instantly.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """What the gateway reads and how it answers."""

    model_config = SettingsConfigDict(env_prefix="RELAYRL_GATEWAY_", extra="forbid", use_attribute_docstrings=True)

    run: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name: the Redis key prefix `relayrl:{run}:` whose streams and keys the gateway reads."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """redis:// URL of the run's Redis."""
    learner: str | None = None
    """host:port of the learner's gRPC service (its GetStatus); null: not reported."""
    reward: str | None = None
    """host:port of the reward service's gRPC service (its GetStatus); null: not reported."""
    actors: list[str] = []
    """host:port of rollout actors to ask for their served version (GetStatus)."""
    rpc_timeout_s: float = Field(2.0, gt=0, le=30)
    """Deadline of one status RPC; a service that does not answer in time is reported unavailable."""
    reward_window: int = Field(64, ge=1, le=10_000)
    """Most recent scored groups the reward statistics are computed over (default of `?window=`)."""
    auth_token: SecretStr | None = Field(None, validation_alias=AliasChoices("RELAYRL_AUTH_TOKEN", "auth_token"))
    """Bearer token every endpoint but health requires (the page also takes `?token=`); null: none.
    Empty is refused, as by the gRPC services."""
    run_dir: Path | None = None
    """A local run's output directory (set from its endpoints.json): once the run's Redis is gone,
    /v1/status answers from its summary.json."""

    @field_validator("auth_token")
    @classmethod
    def _not_empty(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("RELAYRL_AUTH_TOKEN is set but empty: set a token, or unset it to run without auth")
        return token

    @classmethod
    def from_endpoints(cls, path: str | Path, **overrides) -> GatewaySettings:
        """Settings for a run of the single-machine launcher, from its OUT/endpoints.json."""
        data = json.loads(Path(path).read_text())
        services = data["services"]
        actors = [e["grpc"] for name, e in sorted(services.items()) if name.startswith("actor-")]
        token_file = Path(path).with_name("auth-token")  # the run's token, written by the launcher
        if token_file.exists() and "auth_token" not in overrides:
            overrides["auth_token"] = token_file.read_text().strip()
        return cls(**{"run": data["run"], "redis_url": data["redis"], "learner": services["learner"]["grpc"],
                      "reward": services["reward"]["grpc"], "actors": actors, "run_dir": Path(path).parent, **overrides})
