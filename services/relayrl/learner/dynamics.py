"""Prometheus gauges of the training dynamics: what an RL researcher watches to catch a collapse.

The core metrics (`relayrl.metrics`) say whether the loop runs (step time, drops, staleness); these
say whether it learns: the policy loss, KL to the reference, entropy, clip fractions, gradient
norm, the behaviour/learner mismatch (KL and effective sample size), each reward component
(accuracy against format compliance) and the held-out evaluation. The learner sets them after
every step (`observe_step`) and for every evaluation result it receives (`observe_eval`); a
figure the step did not compute (KL without a reference model) is left unset, not exported as 0.
Only the learner process imports this module, so only it registers these families.
"""

from __future__ import annotations

from prometheus_client import Gauge

LOSS = Gauge("relayrl_learner_loss", "Policy loss of the last step (mean over its minibatches)")
KL = Gauge("relayrl_learner_kl", "KL estimate to the reference policy, mean per completion token (last step)")
ENTROPY = Gauge("relayrl_learner_entropy", "Policy entropy in nats, mean per completion token (last step)")
CLIP_FRACTION = Gauge("relayrl_learner_clip_fraction", "Share of completion tokens whose ratio was clipped (last step)",
                      ["side"])
GRAD_NORM = Gauge("relayrl_learner_grad_norm", "Global gradient norm before clipping (last step)")
MISMATCH_KL = Gauge("relayrl_learner_mismatch_kl", "k3 KL(behaviour || learner) on the batch's tokens (last step)")
ESS = Gauge("relayrl_learner_ess", "Effective sample size of the learner/behaviour importance weights, 1 = on-policy")
REWARD_COMPONENT = Gauge("relayrl_learner_reward_component", "Mean of one reward component over the last batch",
                         ["component"])
EVAL_PASS = Gauge("relayrl_eval_pass_at_1", "Held-out pass@1 (mean over k samples) of the newest evaluated version",
                  ["dataset"])
EVAL_CONS = Gauge("relayrl_eval_cons_at_k", "Held-out cons@k (majority vote) of the newest evaluated version", ["dataset"])
EVAL_FORMAT = Gauge("relayrl_eval_format", "Held-out format compliance of the newest evaluated version", ["dataset"])
EVAL_VERSION = Gauge("relayrl_eval_version", "Policy version the held-out figures belong to", ["dataset"])

_SCALARS = ((LOSS, "loss"), (KL, "kl"), (ENTROPY, "entropy"), (GRAD_NORM, "grad_norm"),
            (MISMATCH_KL, "mismatch_kl"), (ESS, "ess"))
_CLIPS = (("total", "clip_frac"), ("low", "clip_frac_low"), ("high", "clip_frac_high"))
_evaluated: dict[str, int] = {}
"""dataset → the version whose figures the eval gauges show."""


def observe_step(stats: dict) -> None:
    """Set the gauges from one step's statistics (`update.update`'s figures)."""
    for gauge, key in _SCALARS:
        if key in stats:
            gauge.set(stats[key])
    for side, key in _CLIPS:
        if key in stats:
            CLIP_FRACTION.labels(side).set(stats[key])
    for key, value in stats.items():  # reward_accuracy_mean, reward_format_mean, ...
        if key.startswith("reward_") and key.endswith("_mean") and key != "reward_mean":
            REWARD_COMPONENT.labels(key.removeprefix("reward_").removesuffix("_mean")).set(value)


def observe_eval(record: dict) -> None:
    """Set the held-out gauges from one evaluation record, unless a newer version's is already set."""
    dataset, version = record["dataset"], record["version"]
    if version < _evaluated.get(dataset, -1):
        return  # a late, older result (a redelivery) does not overwrite a newer one
    _evaluated[dataset] = version
    EVAL_VERSION.labels(dataset).set(version)
    EVAL_PASS.labels(dataset).set(record["pass@1"])
    EVAL_CONS.labels(dataset).set(record["cons@k"])
    EVAL_FORMAT.labels(dataset).set(record["format"])
