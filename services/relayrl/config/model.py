"""`model:` — which policy a run trains: a Hugging Face directory, or a tiny random model built
locally (no downloads), whose shape is configured here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from relayrl.config.base import Section


class TinyModelConfig(Section):
    """Shape of the small random Qwen2 model `relayrl model init-tiny` builds."""

    hidden_size: int = Field(128, gt=0)
    """Width of the residual stream."""
    num_layers: int = Field(2, gt=0)
    """Number of transformer blocks."""
    num_heads: int = Field(2, gt=0)
    """Attention heads; hidden_size / num_heads is the head size (64 suits vLLM's CPU backend)."""
    intermediate_size: int = Field(512, gt=0)
    """Width of the MLP."""
    max_position_embeddings: int = Field(128, gt=0)
    """Longest sequence (prompt + completion) the model accepts."""
    seed: int = 0
    """Seed of the random initialisation."""
    alphabet: Literal["tasks", "ascii"] = "tasks"
    """Characters the tokenizer knows, one token each: tasks (the procedural tasks' digits and `?+= `), or ascii (printable ASCII, tab and newline: text such as SWE prompts and diffs)."""


class ModelConfig(Section):
    """Which policy to train."""

    path: Path | None = None
    """A Hugging Face model directory. Null: build the tiny model into `<out>/init-model`."""
    tiny: TinyModelConfig = TinyModelConfig()
    """Shape of the tiny model built when `path` is null."""
