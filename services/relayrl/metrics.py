"""Serving Prometheus metrics, and where each process's metric families live.

Every family is defined once, in the module of the service that updates it, and registered in
the default registry only when that module is imported, so each process exports its own families
and nothing else (an actor never serves `relayrl_learner_reward_mean 0`, which a query without a
job label would average in):

    relayrl.learner.metrics   the learner: staleness, drops, steps, tokens, reward
    relayrl.learner.dynamics  the learner: loss, KL, entropy, clipping, grad norm, ESS, held-out eval
    relayrl.rollout.metrics   an actor: generated tokens and completions, its version lag
    relayrl.weights.metrics   both sides of a weight version (`role` = learner, actor)
    relayrl.replay.metrics    stream depths (the learner's streams, the reward service's slow lane)
    relayrl.reward.*          the reward service's own (service, verifiers, slow lane)
    relayrl.gateway.metrics   the gateway's HTTP requests (served on its own `/metrics`)

Names follow Prometheus conventions: the `relayrl_` prefix, base units, `_total` counters.
docs/metrics.md is the catalogue (a test keeps it in step with the definitions).
"""

from __future__ import annotations


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Expose /metrics on `host:port` (None or 0: do not serve)."""
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host)
