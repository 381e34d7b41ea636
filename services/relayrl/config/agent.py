"""`task.agent:` — SWE rows as multi-turn agent episodes: the tools the model may call, the prompt
that describes them, and the limits of an episode (turns, tokens, wall clock, each command's
deadline and the episode's tool budget). Null (the default): a SWE row is one completion that
must contain a diff. Set per dataset, so one run's SWE rows are all episodes or none."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from relayrl.config.base import Section

ToolName = Literal["bash", "view", "create", "str_replace", "submit"]

AGENT_TEMPLATE = """Fix the following issue in the repository (your working directory).

<issue>
{problem_statement}
</issue>
{files}
{tools}
Explore the repository, edit it, run its tests if you like, then submit. Your changes to the
repository when you submit are the fix that is judged."""


class AgentConfig(Section):
    """Agent episodes for SWE rows: tools, prompt and limits."""

    tools: list[ToolName] = ["bash", "view", "create", "str_replace", "submit"]
    """The tools the model may call (submit is required: it ends the episode)."""
    template: str = AGENT_TEMPLATE
    """The first prompt of an episode; `{problem_statement}`, `{files}` (as task.swe shows them) and `{tools}` (the tools' description and call format; empty where the chat template describes the tools itself) are filled in."""
    max_turns: int = Field(30, ge=1)
    """Model turns (one tool call each) before the episode ends without a submit."""
    max_tokens: int = Field(8192, gt=0)
    """Tokens of an episode after its prompt, model and observation tokens together."""
    max_turn_tokens: int = Field(1024, gt=0)
    """Longest model turn, in tokens."""
    max_wall_s: float = Field(900.0, gt=0)
    """Wall-clock limit of one episode (generation and tools)."""
    command_timeout_s: float = Field(30.0, gt=0)
    """Deadline of one tool call; a command past it is killed and the model is told so."""
    tool_budget_s: float = Field(300.0, gt=0)
    """Seconds of tool calls one episode may spend in all; past it the episode ends."""
    max_observation_chars: int = Field(4000, ge=200)
    """Longest observation shown to the model (a longer output keeps its head and tail)."""
    max_attempts: int = Field(2, ge=1)
    """Tries of an episode that ends in an infrastructure error (its sandbox failed before the model ran a command) before its sample is marked infra_error (never trained on as a zero)."""
    warm_workspaces: int = Field(2, ge=0)
    """Workspaces each actor keeps prepared (sandbox started, repository extracted) for each of the 8 tasks it worked on last, so their next episodes do not wait for one; 0: prepare each when its episode starts."""

    @field_validator("tools")
    @classmethod
    def _tools(cls, tools: list[str]) -> list[str]:
        if "submit" not in tools:
            raise ValueError("task.agent.tools must include submit (it ends an episode)")
        if len(set(tools)) != len(tools):
            raise ValueError("task.agent.tools lists a tool twice")
        return tools

    @field_validator("template")
    @classmethod
    def _template(cls, template: str) -> str:
        if "{problem_statement}" not in template:
            raise ValueError("task.agent.template must contain {problem_statement}")
        return template
