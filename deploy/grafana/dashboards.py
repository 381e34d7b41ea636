"""Grafana dashboards of relayrl, generated from code: `python deploy/grafana/dashboards.py`.

Each dashboard is a list of panels, each panel one or more PromQL queries over the `relayrl_`
metrics (docs/metrics.md). Series carry a `component` label (learner, actor, reward) that the
scrape configs set (deploy/prometheus/prometheus.yml, the chart's ServiceMonitors). The JSON
files in `dashboards/` (and their copy in helm/relayrl/dashboards/) are the output, committed so
Grafana's file provisioning and the chart's ConfigMaps use them as they are; a test regenerates them and fails when they differ, and another
runs every query against a Prometheus scraping a real training run and fails when one is empty.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
HELM_OUT = Path(__file__).resolve().parents[2] / "helm" / "relayrl" / "dashboards"  # the chart's ConfigMaps
RATE = "$__rate_interval"  # Grafana's rate window: at least four scrape intervals


@dataclass
class Panel:
    title: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def q(p: float, metric: str, sel: str, by: str = "") -> str:
    """The p-quantile of a histogram over the rate window, optionally split by labels."""
    return f"histogram_quantile({p}, sum by (le{', ' + by if by else ''}) (rate({metric}_bucket{{{sel}}}[{RATE}])))"


def mean(metric: str, sel: str, by: str = "") -> str:
    """Mean observation of a histogram over the rate window."""
    b = f" by ({by})" if by else ""
    return f"sum{b} (rate({metric}_sum{{{sel}}}[{RATE}])) / sum{b} (rate({metric}_count{{{sel}}}[{RATE}]))"


L, A, R = 'component="learner"', 'component="actor"', 'component="reward"'


def ratio(outcome: str) -> str:
    """Share of scoring attempts with `outcome`, by kind; 0 (not empty) while there are none."""
    total = f"rate(relayrl_reward_requests_total{{{R}}}[{RATE}])"
    part = f'rate(relayrl_reward_requests_total{{{R}, outcome="{outcome}"}}[{RATE}])'
    return f"sum by (kind) ({part} or 0 * {total}) / sum by (kind) ({total})"

DASHBOARDS = [
    Dashboard("relayrl-overview", "relayrl / overview", "The R1 curves and the health of the loop at a glance.", [
        Panel("Reward (training batch mean)", [(f"relayrl_learner_reward_mean{{{L}}}", "learner batch")],
              description="Mean reward of the groups in the last optimizer step."),
        Panel("Pass rate of scored samples", [(ratio("pass"), "{{kind}}")], unit="percentunit",
              description="Share of scoring attempts whose outcome was pass, by task kind."),
        Panel("Response length (tokens)", [(q(0.5, "relayrl_response_length_tokens", A), "p50"),
                                           (mean("relayrl_response_length_tokens", A), "mean"),
                                           (q(0.95, "relayrl_response_length_tokens", A), "p95")]),
        Panel("Version lag (actors)", [(f"max(relayrl_version_lag{{{A}}})", "max"),
                                       (f"avg(relayrl_version_lag{{{A}}})", "mean")],
              description="Learner's published version minus the version an actor serves."),
        Panel("Throughput (tokens/s)", [(f"sum(rate(relayrl_rollout_tokens_total{{{A}}}[{RATE}]))", "generated"),
                                        (f"sum(rate(relayrl_learner_tokens_total{{{L}}}[{RATE}]))", "trained")]),
        Panel("Policy version", [(f'max(relayrl_policy_version{{{L}, role="learner"}})', "learner"),
                                 (f'min(relayrl_policy_version{{{A}, role="actor"}})', "oldest actor")]),
        Panel("Held-out pass@1 (evaluator)", [(f"max by (dataset) (relayrl_eval_pass_at_1{{{L}}})", "{{dataset}}")],
              unit="percentunit", description="pass@1 over k samples on held-out problems of the newest evaluated "
                                              "version (eval.every_steps; none while evaluation is off)."),
    ]),
    Dashboard("relayrl-rollout", "relayrl / rollout", "Rollout actors: generation, versions, weight loading.", [
        Panel("Tokens generated per actor (tokens/s)",
              [(f"sum by (instance) (rate(relayrl_rollout_tokens_total{{{A}}}[{RATE}]))", "{{instance}}")]),
        Panel("Completions per second", [(f"sum(rate(relayrl_rollout_requests_total{{{A}}}[{RATE}]))", "completions")]),
        Panel("Response length quantiles (tokens)", [(q(0.5, "relayrl_response_length_tokens", A), "p50"),
                                                     (q(0.99, "relayrl_response_length_tokens", A), "p99")]),
        Panel("Served version per actor", [(f'relayrl_policy_version{{{A}, role="actor"}}', "{{instance}}")]),
        Panel("Version lag per actor", [(f"relayrl_version_lag{{{A}}}", "{{instance}}")]),
        Panel("Weight load time (s)", [(mean("relayrl_weight_sync_seconds", f'{A}, role="actor"'), "mean")], unit="s"),
        Panel("Weights received (bytes/s)",
              [(f'sum(rate(relayrl_weight_sync_bytes_total{{{A}, role="actor"}}[{RATE}]))', "received")], unit="Bps"),
        Panel("Agent episodes in flight", [(f"sum(relayrl_agent_episodes_in_flight{{{A}}})", "in flight")]),
        Panel("Agent episodes by end (/s)",
              [(f"sum by (end) (rate(relayrl_agent_episodes_total{{{A}}}[{RATE}]))", "{{end}}")]),
        Panel("Agent tool calls by tool and outcome (/s)",
              [(f"sum by (tool, outcome) (rate(relayrl_agent_tool_calls_total{{{A}}}[{RATE}]))", "{{tool}} {{outcome}}")],
              description="error: the call failed; timeout: killed at its deadline; malformed: no well-formed call."),
        Panel("Agent turns and episode time", [(mean("relayrl_agent_turns", A), "turns (mean)"),
                                               (mean("relayrl_agent_episode_seconds", A), "seconds (mean)")]),
        Panel("Workspace wait (s)", [(mean("relayrl_agent_workspace_wait_seconds", A, "warm"), "warm={{warm}}")],
              unit="s", description="warm: the episode found a prepared workspace in the pool."),
    ]),
    Dashboard("relayrl-reward", "relayrl / reward service", "Verifiers: outcomes, latency, reward values.", [
        Panel("Samples scored by kind and outcome (/s)",
              [(f"sum by (kind, outcome) (rate(relayrl_reward_requests_total{{{R}}}[{RATE}]))", "{{kind}} {{outcome}}")]),
        Panel("Pass rate", [(ratio("pass"), "{{kind}}")], unit="percentunit"),
        Panel("Infrastructure error ratio", [(ratio("infra_error"), "{{kind}}")], unit="percentunit",
              description="Attempts that hit an infrastructure error (retried, never trained on)."),
        Panel("Scoring latency (s)", [(q(0.5, "relayrl_reward_duration_seconds", R, "kind"), "p50 {{kind}}"),
                                      (q(0.99, "relayrl_reward_duration_seconds", R, "kind"), "p99 {{kind}}")], unit="s"),
        # relayrl_reward_value has negative buckets, so prometheus_client exports no _sum: quantiles only
        Panel("Reward value quantiles by kind", [(q(0.5, "relayrl_reward_value", R, "kind"), "p50 {{kind}}"),
                                                 (q(0.9, "relayrl_reward_value", R, "kind"), "p90 {{kind}}")]),
        Panel("Groups in flight", [(f"sum(relayrl_reward_groups_in_flight{{{R}}})", "in flight")]),
    ]),
    Dashboard("relayrl-learner", "relayrl / learner", "The optimizer: step time, waiting, staleness, drops, and the "
              "training dynamics (loss, entropy, KL, clipping, gradient norm, ESS, reward components, held-out).", [
        Panel("Step time and wait for data (s)", [(mean("relayrl_learner_step_seconds", L), "step"),
                                                  (mean("relayrl_learner_wait_seconds", L), "wait")], unit="s"),
        Panel("Groups trained (/s)", [(f"sum(rate(relayrl_groups_trained_total{{{L}}}[{RATE}]))", "trained")]),
        Panel("Groups dropped by reason (/s)",
              [(f"sum by (reason) (rate(relayrl_groups_dropped_total{{{L}}}[{RATE}]))", "{{reason}}")]),
        Panel("Staleness at training (versions)", [(mean("relayrl_sample_staleness_versions", L), "mean"),
                                                   (q(0.99, "relayrl_sample_staleness_versions", L), "p99")]),
        Panel("Tokens trained (tokens/s)", [(f"sum(rate(relayrl_learner_tokens_total{{{L}}}[{RATE}]))", "trained")]),
        Panel("Weight publish time (s)", [(mean("relayrl_weight_sync_seconds", f'{L}, role="learner"'), "mean")],
              unit="s"),
        Panel("Weights serialized (bytes/s)",
              [(f'sum(rate(relayrl_weight_sync_bytes_total{{{L}, role="learner"}}[{RATE}]))', "serialized")], unit="Bps"),
        # the training dynamics (learner/dynamics.py): what shows a collapse coming
        Panel("Policy loss", [(f"max(relayrl_learner_loss{{{L}}})", "loss")],
              description="The clipped surrogate (+ KL term) of the last step."),
        Panel("Entropy (nats per token)", [(f"max(relayrl_learner_entropy{{{L}}})", "entropy")],
              description="Falling to ~0 while the reward stalls: the policy collapsed onto one answer."),
        Panel("KL to the reference and behaviour mismatch",
              [(f"max(relayrl_learner_kl{{{L}}})", "KL to reference"),
               (f"max(relayrl_learner_mismatch_kl{{{L}}})", "mismatch KL (behaviour || learner)")]),
        Panel("Clip fractions", [(f"max by (side) (relayrl_learner_clip_fraction{{{L}}})", "{{side}}")],
              unit="percentunit", description="Share of tokens whose importance ratio was clipped, below and above."),
        Panel("Gradient norm (before clipping)", [(f"max(relayrl_learner_grad_norm{{{L}}})", "grad norm")]),
        Panel("Effective sample size of the importance weights", [(f"max(relayrl_learner_ess{{{L}}})", "ESS")],
              unit="percentunit", description="1 when the actors sample what the learner would (on-policy)."),
        Panel("Accuracy vs format reward", [(f"max by (component) (relayrl_learner_reward_component{{{L}}})",
                                             "{{component}}")], unit="percentunit",
              description="Each reward component's mean over the last batch, unweighted."),
        Panel("Held-out evaluation", [(f"max by (dataset) (relayrl_eval_pass_at_1{{{L}}})", "pass@1 {{dataset}}"),
                                      (f"max by (dataset) (relayrl_eval_cons_at_k{{{L}}})", "cons@k {{dataset}}"),
                                      (f"max by (dataset) (relayrl_eval_format{{{L}}})", "format {{dataset}}")],
              unit="percentunit", description="The evaluator's figures of the newest evaluated version."),
    ]),
    Dashboard("relayrl-queue", "relayrl / queues", "Redis streams: backlog and leases (the learner samples them each step).", [
        Panel("Waiting entries by stream", [(f"max by (stream) (relayrl_queue_depth{{{L}}})", "{{stream}}")],
              description="Entries not yet delivered to the stream's consumer group."),
        Panel("Leased, unacknowledged entries by stream",
              [(f"max by (stream) (relayrl_queue_pending{{{L}}})", "{{stream}}")]),
        Panel("Prompt backlog per actor", [(f'max(relayrl_queue_depth{{{L}, stream="prompts"}}) / '
                                            f'scalar(count(up{{{A}}} == 1))', "prompts per actor")],
              description="What the KEDA trigger on the prompts stream scales the actors by."),
    ]),
]


def panel_json(p: Panel, i: int) -> dict:
    return {"id": i + 1, "type": p.kind, "title": p.title, "description": p.description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
            "targets": [{"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for j, (expr, legend) in enumerate(p.queries)]}


def dashboard_json(d: Dashboard) -> dict:
    return {"uid": d.uid, "title": d.title, "description": d.description, "tags": ["relayrl"],
            "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"}, "timezone": "browser",
            "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                     "label": "Data source", "current": {}}]},
            "panels": [panel_json(p, i) for i, p in enumerate(d.panels)]}


def render() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS}


def queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every query."""
    return [(d.uid, p.title, expr) for d in DASHBOARDS for p in d.panels for expr, _ in p.queries]


if __name__ == "__main__":
    for out in (OUT, HELM_OUT):
        out.mkdir(exist_ok=True)
        for name, text in render().items():
            (out / name).write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT} and {HELM_OUT}", file=sys.stderr)
