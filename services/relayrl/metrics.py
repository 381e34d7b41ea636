"""The core Prometheus metrics of DESIGN.md, defined once for every service.

Names follow Prometheus conventions: the `relayrl_` prefix, base units, `_total` counters. Each
process registers them in the default registry and exposes them with `serve_metrics`. The reward
service adds its own beside these (relayrl.reward); docs/metrics.md is the catalogue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

POLICY_VERSION = Gauge("relayrl_policy_version", "Version the learner published / an actor serves", ["role"])
VERSION_LAG = Gauge("relayrl_version_lag", "Learner version minus the version this actor serves")
QUEUE_DEPTH = Gauge("relayrl_queue_depth", "Stream entries not yet delivered to the consumer group", ["stream"])
QUEUE_PENDING = Gauge("relayrl_queue_pending", "Stream entries leased but not acknowledged", ["stream"])
ROLLOUT_TOKENS = Counter("relayrl_rollout_tokens_total", "Completion tokens generated")
ROLLOUT_REQUESTS = Counter("relayrl_rollout_requests_total", "Completions generated")
PROMPT_REGENERATIONS = Counter("relayrl_prompt_regenerations_total", "Prompts an actor leased again after an "
                               "earlier lease expired (generated twice: work wasted)")
GROUPS_REFUSED = Counter("relayrl_rollout_groups_refused_total", "Groups the reward service refused (their prompts "
                         "were dead-lettered)")
RESPONSE_LENGTH = Histogram("relayrl_response_length_tokens", "Completion lengths in tokens",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384))
STALENESS = Histogram("relayrl_sample_staleness_versions", "Versions between generation and training",
                      buckets=(0, 1, 2, 3, 4, 6, 8, 16, 32))
GROUPS_DROPPED = Counter("relayrl_groups_dropped_total", "Groups not trained on, by reason", ["reason"])
GROUPS_TRAINED = Counter("relayrl_groups_trained_total", "Groups trained on")
LEARNER_STEP = Histogram("relayrl_learner_step_seconds", "Time of one optimizer step")
LEARNER_WAIT = Histogram("relayrl_learner_wait_seconds", "Time the learner waited for a batch of scored groups")
LEARNER_TOKENS = Counter("relayrl_learner_tokens_total", "Completion tokens trained on")
LEARNER_REWARD = Gauge("relayrl_learner_reward_mean", "Mean reward of the last training batch")
WEIGHT_SYNC = Histogram("relayrl_weight_sync_seconds", "Publishing (learner) or loading (actor) one version", ["role"])
WEIGHT_BYTES = Counter("relayrl_weight_sync_bytes_total", "Weight bytes serialized (learner) or received (actor)", ["role"])
# Every drop reason exported from the start (at 0): a rate over it has data before the first drop,
# and a dashboard panel (deploy/grafana) shows "none dropped" instead of "no data".
for _reason in ("stale", "duplicate", "infra_error", "dead_letter"):
    GROUPS_DROPPED.labels(_reason)


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Expose /metrics on `host:port` (None or 0: do not serve)."""
    if port:
        start_http_server(port, addr=host)
