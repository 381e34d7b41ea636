"""The learner's Prometheus metrics (registered only in a process that imports the learner).

`relayrl.metrics` says where every other family lives; docs/metrics.md is the catalogue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STALENESS = Histogram("relayrl_sample_staleness_versions", "Versions between generation and training",
                      buckets=(0, 1, 2, 3, 4, 6, 8, 16, 32))
GROUPS_DROPPED = Counter("relayrl_groups_dropped_total", "Groups not trained on, by reason", ["reason"])
GROUPS_TRAINED = Counter("relayrl_groups_trained_total", "Groups trained on")
LEARNER_STEP = Histogram("relayrl_learner_step_seconds", "Time of one optimizer step")
LEARNER_WAIT = Histogram("relayrl_learner_wait_seconds", "Time the learner waited for a batch of scored groups")
LEARNER_TOKENS = Counter("relayrl_learner_tokens_total", "Completion tokens trained on")
LEARNER_REWARD = Gauge("relayrl_learner_reward_mean", "Mean reward of the last training batch")
