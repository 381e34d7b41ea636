"""A rollout actor's Prometheus metrics (registered only in a process that imports the actor).

`relayrl.metrics` says where every other family lives; docs/metrics.md is the catalogue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VERSION_LAG = Gauge("relayrl_version_lag", "Learner version minus the version this actor serves")
ROLLOUT_TOKENS = Counter("relayrl_rollout_tokens_total", "Completion tokens generated")
ROLLOUT_REQUESTS = Counter("relayrl_rollout_requests_total", "Completions generated")
RESPONSE_LENGTH = Histogram("relayrl_response_length_tokens", "Completion lengths in tokens",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384))
