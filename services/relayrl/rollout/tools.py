"""The tools of an agent episode, run in its sandbox session: a parsed call in, an observation out.

`act` reads the call out of a model turn (`relayrl.tasks.agent.parse_call`) and runs it: `bash`,
`view`, `create` and `str_replace` become requests to the episode's workspace server
(`relayrl.reward.session`), `submit` ends the episode. What the model gets back is an
`Observation`: the tool's output (cut to `task.agent.max_observation_chars`, head and tail kept),
or the error the model made (a malformed call, an unknown tool, a missing file, a replacement
that is not unique), or the note that its command was killed at its deadline. None of those
raise: only a broken session does (`SessionError`, whose `infra` says whose fault it is).

How observations are put into the token stream (a chat template's tool turn, or the plain
`<tool_response>` block) is `ObservationFormat`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

from relayrl.config.agent import AgentConfig
from relayrl.reward.session import SandboxSession
from relayrl.rollout.metrics import TOOL_CALLS
from relayrl.tasks.agent import CallError, parse_call


@dataclass
class Observation:
    """What a tool call gave back."""

    text: str
    """Shown to the model (empty for submit)."""
    tool: str
    """The tool called ("none" when the turn held no well-formed call)."""
    outcome: str
    """ok, error, timeout or malformed."""

    @property
    def submitted(self) -> bool:
        return self.tool == "submit"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[len(text) - half:]}"


def act(session: SandboxSession, turn_text: str, cfg: AgentConfig) -> Observation:
    """Run the call in `turn_text` (the model's turn) in `session`; SessionError if it broke."""
    try:
        call = parse_call(turn_text, cfg.tools)
    except CallError as exc:
        obs = Observation(f"error: {exc}", "none", "malformed")
    else:
        obs = _run(session, call.name, call.arguments, cfg)
    TOOL_CALLS.labels(obs.tool, obs.outcome).inc()
    return obs


def _run(session: SandboxSession, name: str, args: dict, cfg: AgentConfig) -> Observation:
    limit = cfg.max_observation_chars
    if name == "submit":
        return Observation("", "submit", "ok")
    try:
        reply = session.request(name, cfg.command_timeout_s, max_output=limit, **args)
    except Exception:
        TOOL_CALLS.labels(name, "broken").inc()
        raise
    if "error" in reply:
        return Observation(f"error: {_cut(str(reply['error']), limit)}", name, "error")
    output = _cut(str(reply.get("output", "")), limit)
    if name != "bash":
        return Observation(output, name, "ok")
    if reply.get("timed_out"):
        return Observation(f"the command was killed after {cfg.command_timeout_s:g} s\n{output}", name, "timeout")
    return Observation(f"exit code {reply.get('exit_code')}\n{output}", name, "ok")


PLAIN = ("\n<tool_response>\n", "\n</tool_response>\n")
"""An observation's wrapping where the policy has no chat template (or task.chat is off)."""
_ASSISTANT, _OBSERVATION = "\x1fASSISTANT\x1f", "\x1fOBSERVATION\x1f"


class ObservationFormat:
    """How an observation enters the token stream after a model turn.

    With a chat template (`task.chat`), the text between the end of an assistant message and the
    next assistant turn when a `tool` message sits between them (the template's tool role, or, if
    it has none, a user message holding a `<tool_response>` block): the template's own end of
    turn, tool turn and assistant header, all observation tokens (loss mask 0). When the model's
    turn already ended with its EOS (the end-of-turn token), the template's copy of it is left
    out. Without a template: the plain `<tool_response>` block."""

    def __init__(self, tokenizer, chat: bool) -> None:
        self.head, self.tail = PLAIN
        self.eos_text = ""
        if chat and getattr(tokenizer, "chat_template", None):
            self.head, self.tail = self._delta(tokenizer)
            self.eos_text = tokenizer.eos_token or ""

    @staticmethod
    def _delta(tokenizer) -> tuple[str, str]:
        base = [{"role": "user", "content": "U"}, {"role": "assistant", "content": _ASSISTANT}]
        for turn in ({"role": "tool", "content": _OBSERVATION},
                     {"role": "user", "content": f"{PLAIN[0].strip()}\n{_OBSERVATION}\n{PLAIN[1].strip()}"}):
            try:
                full = tokenizer.apply_chat_template([*base, turn], tokenize=False, add_generation_prompt=True)
            except Exception:  # jinja's TemplateError: this template has no tool role; try a user turn
                continue
            after = full[full.index(_ASSISTANT) + len(_ASSISTANT):]
            if _OBSERVATION in after:
                head, _, tail = after.partition(_OBSERVATION)
                return head, tail
        raise ValueError("the chat template renders neither a tool message nor a user message after an assistant one")

    def wrap(self, text: str, after_eos: bool) -> str:
        """The text of an observation's tokens; `after_eos`: the model's turn ended with its EOS."""
        head = self.head
        if after_eos and self.eos_text and head.startswith(self.eos_text):
            head = head[len(self.eos_text):]
        return head + text + self.tail
