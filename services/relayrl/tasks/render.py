"""The one place a row becomes what an actor sees and what a verifier gets, for training and `relayrl eval`.

The prompt text: a math or code row's prompt under its kind's `task.templates`; a SWE row's problem
statement and relevant files under `task.swe.template` (`tasks.swe`), or, for agent episodes
(`task.agent`), under `task.agent.template` with the tools described (`tasks.agent`: in the text,
or through the chat template where it takes a `tools` list); with `task.chat`, or
whenever a row's prompt is chat messages, the policy tokenizer's chat template around it, after
the system message and the worked examples of the config. The reference: a math row's gold
answer, a code row's test spec as JSON, a SWE row's task directory. Metadata (JSON): the row's
id, where it came from, and what it carries (verl's `data_source`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from relayrl.config.task import TaskConfig
from relayrl.tasks.agent import schemas, tool_docs
from relayrl.tasks.row import DataError, Row
from relayrl.tasks.swe import swe_prompt


@dataclass(frozen=True)
class Rendered:
    """A row as the prompts stream carries it."""

    text: str
    """What the model is fed."""
    kind: str
    """The verifier kind."""
    reference: str
    """What the verifier checks against."""
    metadata: str
    """JSON: the row's id, origin and carried metadata."""


def takes_tools(tokenizer) -> bool:
    """The tokenizer's chat template renders a `tools` list (it describes tools in its own words)."""
    return "tools" in (getattr(tokenizer, "chat_template", None) or "")


def chat_wrap(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> str:
    """`messages` (and the `tools` schemas, if any) in the tokenizer's chat template, ready for the
    assistant's reply (a leading BOS is dropped: the engines add their own)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat template (task.chat, chat-message prompts and --chat need one)")
    wrapped = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token or ""
    return wrapped[len(bos):] if bos and wrapped.startswith(bos) else wrapped


def reference(row: Row) -> str:
    """What the row's verifier checks a response against."""
    if row.kind == "code":
        return json.dumps(row.tests, sort_keys=True)
    if row.kind == "swe":
        return str(row.task)
    return row.answer


def prompt_text(row: Row, cfg: TaskConfig, tokenizer) -> str:
    """The text the model is fed for `row`."""
    tools = schemas(cfg.agent) if cfg.agent is not None and row.kind == "swe" and cfg.chat and takes_tools(tokenizer) \
        else None
    if row.kind == "swe" and row.prompt is None and cfg.agent is not None:
        content: str | list[dict] = swe_prompt(row, cfg.swe, cfg.agent.template, "" if tools else tool_docs(cfg.agent))
    elif row.kind == "swe" and row.prompt is None:
        content = swe_prompt(row, cfg.swe)
    elif isinstance(row.prompt, str):
        # a SWE row that brings its own prompt text is used as it is
        content = getattr(cfg.templates, row.kind, "{prompt}").replace("{prompt}", row.prompt)
    else:
        content = list(row.prompt)
    if isinstance(content, str) and not cfg.chat:
        return content
    messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
    has_system = any(m["role"] == "system" for m in messages)
    head = [{"role": "system", "content": cfg.system}] if cfg.system is not None and not has_system else []
    for ex in cfg.examples:
        head += [{"role": "user", "content": ex.question}, {"role": "assistant", "content": ex.response}]
    if has_system and head:  # the row's own system message stays first
        messages = [messages[0], *head, *messages[1:]] if messages[0]["role"] == "system" else head + messages
    else:
        messages = head + messages
    try:
        return chat_wrap(tokenizer, messages, tools)
    except ValueError as exc:
        raise DataError(f"{row.where or 'task'}: prompt: {exc}") from None


def render(row: Row, cfg: TaskConfig, tokenizer) -> Rendered:
    """`row` as an actor gets it (prompt text) and a verifier checks it (kind, reference)."""
    meta = {"id": row.id, **({"where": row.where} if row.where else {}), **row.metadata}
    return Rendered(prompt_text(row, cfg, tokenizer), row.kind, reference(row), json.dumps(meta))
