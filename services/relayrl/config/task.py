"""`task:` — where a run's prompts come from and how they are put to the model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from relayrl.config.base import Section


class ChatExample(Section):
    """A worked example shown to the model as an earlier user/assistant exchange (few-shot)."""

    question: str
    """The user's turn."""
    response: str
    """The assistant's reply, in the format the reward asks for."""


class TaskConfig(Section):
    """Where prompts come from, and how they are put to the model."""

    name: Literal["most_frequent_digit", "add_digits", "reasoning_gym"] = "most_frequent_digit"
    """A procedural task shipped in `relayrl.tasks`, or `reasoning_gym`: a generator of the reasoning-gym package (`dataset`)."""
    seed: int = 0
    """Seed of the prompt generator (training prompts)."""
    num_digits: int = Field(5, ge=2, le=12)
    """Digits per prompt (most_frequent_digit)."""
    dataset: str = "basic_arithmetic"
    """reasoning-gym generator name (name: reasoning_gym), e.g. basic_arithmetic, chain_sum."""
    dataset_options: dict[str, Any] = {}
    """Keyword arguments of that generator's config (e.g. max_terms, max_digits, operators)."""
    chat: bool = False
    """Wrap each prompt in the policy tokenizer's chat template (instruct models)."""
    system: str | None = None
    """System message of the chat (chat only); null: the template's default."""
    examples: list[ChatExample] = []
    """Worked examples put before the question as earlier chat turns (chat only)."""

    @model_validator(mode="after")
    def _chat_fields(self) -> TaskConfig:
        if not self.chat and (self.system is not None or self.examples):
            raise ValueError("task.system and task.examples need task.chat: true")
        return self
