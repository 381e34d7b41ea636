"""Entry of `relayrl serve gateway`: build the settings from flags, a run config or a local run's
endpoints.json (flags win), then serve the app with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayrl.gateway.settings import GatewaySettings


def settings_from(config: Path | None, endpoints: Path | None, **flags) -> GatewaySettings:
    """Settings from, in rising precedence: the environment, `config` (run name, queue.url),
    `endpoints` (a local run's addresses), and the flags that are not None / empty."""

    from pydantic import ValidationError

    from relayrl.preflight import StartupError

    try:
        return _settings(config, endpoints, flags)
    except ValidationError as exc:  # a flag or RELAYRL_GATEWAY_* variable: one line per problem
        problems = []
        for e in exc.errors():
            where, what = ".".join(map(str, e["loc"])) or "settings", e["msg"].removeprefix("Value error, ")
            problems.append(what if where in what else f"{where}: {what}")
        raise StartupError("; ".join(problems)) from None


def _settings(config: Path | None, endpoints: Path | None, flags: dict) -> GatewaySettings:
    from relayrl.gateway.settings import GatewaySettings

    given = {k: v for k, v in flags.items() if v not in (None, [], ())}
    if config is not None:
        from relayrl.config import RunConfig

        cfg = RunConfig.load(config)
        base = {"run": cfg.run, **({"redis_url": cfg.queue.url} if getattr(cfg.queue, "url", None) else {})}
        given = {**base, **given}
    if endpoints is not None:
        return GatewaySettings.from_endpoints(endpoints, **given)
    return GatewaySettings(**given)


def main(settings, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    import uvicorn

    from relayrl.gateway.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
