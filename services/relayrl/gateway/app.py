"""The gateway's HTTP API (FastAPI): run status, versions, queue depths, reward statistics,
pause/resume of prompt admission, health, and a human status page at `/`.

Every figure is read on request (see `state`); nothing is cached, so two gateways behind a load
balancer agree. Pausing sets `relayrl:{run}:paused`, which the learner checks before admitting
prompts: a pause stops new work entering while groups already admitted finish.

Security: when an auth token is configured, every endpoint but health requires it as a Bearer
token (401 otherwise): the run's figures are the operator's, and pausing is a control action. The
status page also takes it as `?token=` (a browser cannot send the header). Liveness and readiness
stay open for probes, and so do `/metrics` (the gateway's own request counters, no run data, as
every service's metrics port) and `/docs` (Swagger UI served from the fastapi-offline wheel, so it
works on a machine without internet). This does not cover transport security (terminate TLS in
front of the gateway) nor rate limiting.

A query parameter an endpoint does not take is 422 (a misspelt `?windw=` silently ignored would
answer a question nobody asked). After the run: once its Redis is gone, `/v1/status` answers from
the run directory (a local run's OUT, known from its endpoints.json) with `finished: true` and
the run's summary; the other endpoints answer 503 saying the run finished and where its summary is.
"""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager

import redis
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relayrl import __version__
from relayrl.gateway import models
from relayrl.gateway.metrics import CountRequests
from relayrl.gateway.settings import GatewaySettings
from relayrl.gateway.state import RunState

_REDIS_DOWN = {503: {"description": "The run's Redis cannot be reached (or the run finished and it is gone).",
                     "model": models.Health}}
_UNKNOWN_QUERY = {422: {"description": "A query parameter the endpoint does not take, or an invalid value.",
                        "model": models.ValidationErrors}}
_bearer = HTTPBearer(auto_error=False, description="The service auth token (RELAYRL_AUTH_TOKEN).")


def create_app(settings: GatewaySettings) -> FastAPI:
    """The app for one run; its Redis and gRPC clients close with the app."""
    state = RunState(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        state.close()

    app = FastAPIOffline(title="relayrl gateway", version=__version__, lifespan=lifespan,
                         responses=_UNKNOWN_QUERY, dependencies=[Depends(_known_query_only)],
                         description=f"Control plane of run `{settings.run}`: status, versions, queue depths, "
                                     "reward statistics, pause/resume of prompt admission.")
    app.add_middleware(CountRequests)

    @app.exception_handler(redis.RedisError)
    async def _redis_down(_request: Request, exc: redis.RedisError) -> JSONResponse:
        # The one failure the gateway cannot answer around: Redis holds the run's state.
        if (done := state.finished_run()) is not None:
            return JSONResponse({"status": f"run finished: its summary is {done['path']} (Redis is gone; "
                                           "/v1/status answers from the run directory)"}, status_code=503)
        return JSONResponse({"status": f"redis unavailable: {exc}"}, status_code=503)

    def check(presented: str | None) -> None:
        token = settings.auth_token
        if token is None:
            return
        if presented is None or not secrets.compare_digest(presented.encode(), token.get_secret_value().encode()):
            raise HTTPException(401, "a valid Bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    def authorized(creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        check(creds.credentials if creds else None)

    auth_errors = {**_REDIS_DOWN, 401: {"description": "Missing or wrong Bearer token."}}
    guarded = {"responses": auth_errors, "dependencies": [Depends(authorized)]}

    @app.get("/healthz", response_model=models.Health, tags=["health"])
    def healthz() -> dict:
        """Liveness: the process answers (Redis is not consulted)."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=models.Health, responses=_REDIS_DOWN, tags=["health"])
    def readyz() -> dict:
        """Readiness: the run's Redis answers."""
        state.ping()
        return {"status": "ok"}

    @app.get("/v1/status", response_model=models.RunStatus, **guarded, tags=["run"])
    def status() -> dict:
        """The whole run at a glance; after the run, from its directory once Redis is gone."""
        try:
            learner = state.learner_status()
            return {"run": settings.run, "paused": state.paused(), "published_version": state.published_version(),
                    "learner": learner, "reward": state.reward_status(), "queues": state.queues(),
                    "actors": state.actor_consumers(), "finished": bool(learner and learner["done"])}
        except redis.RedisError:
            if (done := state.finished_run()) is None:
                raise
            return {"run": settings.run, "paused": False, "published_version": done["learner"].get("version"),
                    "learner": None, "reward": None, "queues": {}, "actors": [], "finished": True,
                    "summary": done["summary"]}

    @app.get("/v1/versions", response_model=models.Versions, **guarded, tags=["run"])
    def versions() -> dict:
        """Published policy version, the learner's, and the version each configured actor serves."""
        published = state.published_version()
        learner = state.learner_status()
        actors = state.actor_statuses()
        served = [a["version"] for a in actors if a["version"] is not None]
        lag = published - min(served) if published is not None and served else None
        return {"published": published, "learner": learner["version"] if learner else None, "actors": actors,
                "max_lag": lag}

    @app.get("/v1/queues", response_model=dict[str, models.QueueDepth], **guarded, tags=["run"])
    def queues() -> dict:
        """Depth of every stream of the run: prompts, scored groups, slow-lane jobs, dead letters."""
        return state.queues()

    @app.get("/v1/rewards", response_model=models.RewardStats, **guarded, tags=["run"])
    def rewards(window: int | None = Query(None, ge=1, le=10_000, description="Recent scored groups to summarise.")) -> dict:
        """Reward statistics over the most recently scored groups, plus the reward service's counters."""
        n = window or settings.reward_window
        return {"window": n, **state.reward_stats(n), "service": state.reward_status()}

    @app.get("/v1/admission", response_model=models.Admission, **guarded, tags=["admission"])
    def admission() -> dict:
        """Whether prompt admission is paused."""
        return {"paused": state.paused()}

    @app.post("/v1/admission/pause", response_model=models.Admission, **guarded, tags=["admission"])
    def pause() -> dict:
        """Stop the learner admitting new prompts (groups already admitted still finish)."""
        state.set_paused(True)
        return {"paused": True}

    @app.post("/v1/admission/resume", response_model=models.Admission, **guarded, tags=["admission"])
    def resume() -> dict:
        """Let the learner admit prompts again."""
        state.set_paused(False)
        return {"paused": False}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """The gateway's own Prometheus metrics (relayrl.gateway.metrics)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(token: str | None = Query(None), creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
        from relayrl.gateway.page import render

        check(token if token is not None else (creds.credentials if creds else None))
        return render(status(), rewards(None), versions())

    return app


def _known_query_only(request: Request) -> None:
    """422 for a query parameter the matched endpoint does not declare."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known, stack = set(), [dependant]
    while stack:
        d = stack.pop()
        known |= {p.alias for p in d.query_params}
        stack += d.dependencies
    unknown = [name for name in request.query_params if name not in known]
    takes = ", ".join(sorted(known)) or "none"
    if unknown:
        raise RequestValidationError([{"type": "extra_forbidden", "loc": ("query", name), "input": request.query_params[name],
                                       "msg": f"unknown query parameter (this endpoint takes: {takes})"}
                                      for name in unknown])
