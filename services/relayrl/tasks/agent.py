"""Agent tasks: the tools a model may call, how a call is written, how the prompt describes them,
and how a call is read back out of a model's turn.

One format, Hermes' (the one Qwen2.5's and many other chat templates teach for tools):

    <tool_call>
    {"name": "bash", "arguments": {"command": "python -m pytest -q"}}
    </tool_call>

one call per turn; `"parameters"` is accepted for `"arguments"`, and arguments given as a JSON
string of an object are read as that object. The prompt describes the tools in text (`tool_docs`)
unless the policy's chat template takes a `tools` list (`schemas`), which then describes them in
its own words. Reading a call never raises anything but `CallError`, whose message is what the
model is told (an error observation): a malformed call is the model's mistake, not a crash.

Torch-free and model-free: the learner renders prompts with it (`tasks.render`), the actor parses
turns with it (`rollout.episode`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from relayrl.config.agent import AgentConfig

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ToolSpec:
    """A tool: what it does and its arguments ({name: (JSON type, required, meaning)})."""

    name: str
    description: str
    arguments: dict[str, tuple[str, bool, str]] = field(default_factory=dict)

    def schema(self) -> dict:
        """The OpenAI-style function schema chat templates take in `tools`."""
        props = {k: {"type": t, "description": d} for k, (t, _, d) in self.arguments.items()}
        required = [k for k, (_, r, _) in self.arguments.items() if r]
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": {"type": "object", "properties": props,
                                                                "required": required}}}


TOOLS = {spec.name: spec for spec in (
    ToolSpec("bash", "Run a shell command in the repository (no network; stdout and stderr together, long output "
             "cut in the middle; nothing it starts outlives it).",
             {"command": ("string", True, "The command, run by bash -c.")}),
    ToolSpec("view", "Show a file with line numbers, or list a directory.",
             {"path": ("string", True, "A path relative to the repository's root."),
              "start": ("integer", False, "First line to show (default 1)."),
              "end": ("integer", False, "Last line to show (default: the end).")}),
    ToolSpec("create", "Write a file (created, or replaced with this content).",
             {"path": ("string", True, "A path relative to the repository's root."),
              "content": ("string", True, "The whole content of the file.")}),
    ToolSpec("str_replace", "Replace text in a file: `old` must appear exactly once.",
             {"path": ("string", True, "A path relative to the repository's root."),
              "old": ("string", True, "The exact text to replace, whitespace included."),
              "new": ("string", True, "The text to put in its place.")}),
    ToolSpec("submit", "End the episode: the repository's changes are the fix that is judged."),
)}
_TYPES = {"string": str, "integer": int}


@dataclass(frozen=True)
class ToolCall:
    """A call read from a model's turn."""

    name: str
    arguments: dict


class CallError(ValueError):
    """A turn without a well-formed call; the message is the error observation the model gets."""


def schemas(cfg: AgentConfig) -> list[dict]:
    """The configured tools as function schemas (for a chat template's `tools`)."""
    return [TOOLS[name].schema() for name in cfg.tools]


def tool_docs(cfg: AgentConfig) -> str:
    """The configured tools and the call format, as prompt text."""
    lines = ["Call exactly one tool per reply, written as", CALL_OPEN,
             '{"name": "<tool>", "arguments": {<arguments>}}', CALL_CLOSE, "", "Tools:"]
    for name in cfg.tools:
        spec = TOOLS[name]
        args = ", ".join(f'"{k}": {t}{"" if r else " (optional)"}' for k, (t, r, _) in spec.arguments.items())
        lines.append(f"- {name} {{{args}}}: {spec.description}")
    lines.append(f"A command is stopped after {cfg.command_timeout_s:g} s; outputs longer than "
                 f"{cfg.max_observation_chars} characters are cut.")
    return "\n".join(lines) + "\n"


def parse_call(text: str, allowed: list[str] | tuple[str, ...]) -> ToolCall:
    """The first tool call in `text`; CallError (a message for the model) when there is none or it
    is malformed, names a tool not in `allowed` or gives arguments that do not fit it."""
    start = text.find(CALL_OPEN)
    if start < 0:
        raise CallError(f"No tool call found. Call one tool, as {CALL_OPEN}{{\"name\": ..., \"arguments\": {{...}}}}"
                        f"{CALL_CLOSE}.")
    end = text.find(CALL_CLOSE, start)
    if end < 0:
        raise CallError(f"The tool call is not closed with {CALL_CLOSE}.")
    body = text[start + len(CALL_OPEN):end].strip()
    try:
        call = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits, nesting too deep
        raise CallError(f"The tool call is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise CallError('The tool call must be a JSON object with a "name" and "arguments".')
    name = call["name"]
    if name not in allowed:
        raise CallError(f"Unknown tool {name[:80]!r}; the tools are: {', '.join(allowed)}.")
    args = call.get("arguments", call.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (ValueError, RecursionError):
            raise CallError(f"The arguments of {name} are not a JSON object.") from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CallError(f"The arguments of {name} must be a JSON object.")
    spec = TOOLS[name]
    unknown = sorted(set(args) - set(spec.arguments))
    if unknown:
        raise CallError(f"{name} takes no argument {unknown[0][:80]!r}; it takes: {', '.join(spec.arguments) or 'none'}.")
    for key, (kind, required, _) in spec.arguments.items():
        if key not in args:
            if required:
                raise CallError(f"{name} needs the argument {key!r}.")
            continue
        value = args[key]
        if not isinstance(value, _TYPES[kind]) or isinstance(value, bool):
            raise CallError(f"The argument {key!r} of {name} must be a {kind}.")
    return ToolCall(name, dict(args))
