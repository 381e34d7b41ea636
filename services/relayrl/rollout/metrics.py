"""A rollout actor's Prometheus metrics (registered only in a process that imports the actor).

`relayrl.metrics` says where every other family lives; docs/metrics.md is the catalogue.
"""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from relayrl.config.agent import ToolName

VERSION_LAG = Gauge("relayrl_version_lag", "Learner version minus the version this actor serves")
ROLLOUT_TOKENS = Counter("relayrl_rollout_tokens_total", "Completion tokens generated")
ROLLOUT_REQUESTS = Counter("relayrl_rollout_requests_total", "Completions generated")
PROMPT_REGENERATIONS = Counter("relayrl_prompt_regenerations_total", "Prompts an actor leased again after an "
                               "earlier lease expired (generated twice: work wasted)")
GROUPS_REFUSED = Counter("relayrl_rollout_groups_refused_total", "Groups the reward service refused (their prompts "
                         "were dead-lettered)")
RESPONSE_LENGTH = Histogram("relayrl_response_length_tokens", "Completion lengths in tokens",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384))

# Agent episodes (rollout.episode, .tools, .workspaces). Registered in every actor, every label
# value at 0 from the start, so an actor without `task.agent` shows "none" on the rollout
# dashboard's agent panels instead of "no data".
AGENT_IN_FLIGHT = Gauge("relayrl_agent_episodes_in_flight", "Agent episodes running in this actor.")
AGENT_EPISODES = Counter("relayrl_agent_episodes_total", "Agent episodes finished, by how they ended (submit, "
                         "max_turns, max_tokens, context, wall_clock, tool_budget, sandbox, infra_error).", ["end"])
AGENT_TURNS = Histogram("relayrl_agent_turns", "Model turns per agent episode.",
                        buckets=(1, 2, 3, 5, 8, 12, 20, 30, 50, 100))
AGENT_SECONDS = Histogram("relayrl_agent_episode_seconds", "Wall time of one agent episode (workspace, turns, final "
                          "diff).", buckets=(.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
TOOL_CALLS = Counter("relayrl_agent_tool_calls_total", "Tool calls of agent episodes, by tool and outcome (ok; "
                     "error: the call failed, e.g. no such file; timeout: the command was killed at its deadline; "
                     "malformed: no well-formed call, tool 'none'; broken: the sandbox broke).", ["tool", "outcome"])
WORKSPACE_WAIT = Histogram("relayrl_agent_workspace_wait_seconds", "Time an episode waited for its workspace (warm: "
                           "one was ready in the pool).", ["warm"],
                           buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
WORKSPACE_PREPARE = Histogram("relayrl_agent_workspace_prepare_seconds", "Starting a workspace's sandbox and "
                              "extracting its repository.", buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
for _end in ("submit", "max_turns", "max_tokens", "context", "wall_clock", "tool_budget", "sandbox", "infra_error"):
    AGENT_EPISODES.labels(_end)
for _tool in (*get_args(ToolName), "none"):  # "none": a call too malformed to name a tool
    for _outcome in ("ok", "error", "timeout", "malformed", "broken"):
        TOOL_CALLS.labels(_tool, _outcome)
for _warm in ("true", "false"):
    WORKSPACE_WAIT.labels(_warm)
