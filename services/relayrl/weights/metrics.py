"""Prometheus metrics of weight versions, on both sides: `role` = learner (publishing) or actor
(loading). Registered only by a process that publishes or loads versions (it imports this module);
a process sets only its own role's series.

`relayrl.metrics` says where every other family lives; docs/metrics.md is the catalogue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

POLICY_VERSION = Gauge("relayrl_policy_version", "Version the learner published / an actor serves", ["role"])
WEIGHT_SYNC = Histogram("relayrl_weight_sync_seconds", "Publishing (learner) or loading (actor) one version", ["role"])
WEIGHT_BYTES = Counter("relayrl_weight_sync_bytes_total", "Weight bytes serialized (learner) or received (actor)", ["role"])
