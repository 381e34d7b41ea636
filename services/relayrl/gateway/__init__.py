"""The gateway: the control plane of a run, as a FastAPI app (`relayrl serve gateway`).

It reads the run's Redis (queue depths, versions, recent rewards, the paused flag) and the
services' gRPC status, and writes one thing: the `relayrl:{run}:paused` key that stops the learner
admitting prompts. See `app` for the HTTP API (OpenAPI at /openapi.json) and `state` for where
each figure comes from.
"""
