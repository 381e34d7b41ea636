"""The gateway's own Prometheus metrics, served at its `/metrics` (it has no metrics port): HTTP
requests by route template and status, and their duration. Registered only by the gateway
process; `relayrl.metrics` says where every other family lives, docs/metrics.md is the catalogue.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

REQUESTS = Counter("relayrl_gateway_requests_total", "HTTP requests answered by the gateway",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("relayrl_gateway_request_seconds", "Time to answer one HTTP request", ["route"])


def route_of(scope: dict) -> str:
    """The matched route's template (bounded cardinality), "other" for a path no route matched."""
    route = scope.get("route")
    return getattr(route, "path", None) or "other"


class CountRequests:
    """ASGI middleware: count and time every HTTP request by route template and status."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        t0 = time.perf_counter()

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_of(scope)
            REQUESTS.labels(scope["method"], route, str(status["code"])).inc()
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - t0)
