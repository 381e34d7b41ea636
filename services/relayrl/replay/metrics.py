"""Prometheus gauges of the run's streams, set by whoever watches a stream: the learner (prompts,
groups, each step) and the reward service (the slow lane's `swe`). Registered only by a process
that imports this module.

`relayrl.metrics` says where every other family lives; docs/metrics.md is the catalogue.
"""

from __future__ import annotations

from prometheus_client import Gauge

QUEUE_DEPTH = Gauge("relayrl_queue_depth", "Stream entries not yet delivered to the consumer group", ["stream"])
QUEUE_PENDING = Gauge("relayrl_queue_pending", "Stream entries leased but not acknowledged", ["stream"])
