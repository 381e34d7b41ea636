"""`task:` — where a run's prompts come from (`source`, a discriminated union on `source.type`:
a procedural generator, a reasoning-gym generator, or data files) and how a row is put to the
model (chat template, system message, worked examples, per-kind templates)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from relayrl.config.agent import AgentConfig
from relayrl.config.base import Section

Kind = Literal["math", "code", "swe"]


class ChatExample(Section):
    """A worked example shown to the model as an earlier user/assistant exchange (few-shot)."""

    question: str
    """The user's turn."""
    response: str
    """The assistant's reply, in the format the reward asks for."""


class ProceduralSource(Section):
    """A task generated in `relayrl.tasks.procedural`: endless, reproducible prompts a tiny model can learn."""

    type: Literal["procedural"] = "procedural"
    """Selects this source."""
    name: Literal["most_frequent_digit", "add_digits", "print_value"] = "most_frequent_digit"
    """most_frequent_digit, add_digits (math), or print_value (code: an expression run in the sandbox must print the target)."""
    num_digits: int = Field(5, ge=2, le=12)
    """Digits per prompt (most_frequent_digit)."""


class ReasoningGymSource(Section):
    """A generator of the reasoning-gym package: questions with gold answers for the math verifier."""

    type: Literal["reasoning_gym"] = "reasoning_gym"
    """Selects this source."""
    dataset: str = "basic_arithmetic"
    """reasoning-gym generator name, e.g. basic_arithmetic, chain_sum."""
    options: dict[str, Any] = {}
    """Keyword arguments of that generator's config (e.g. max_terms, max_digits, operators)."""


class FieldMap(Section):
    """Which column holds what; a dotted path reaches into a nested column (`reward_model.ground_truth`). Null: the layout's own column."""

    prompt: str | None = None
    """The prompt: text, or chat messages (a list of {role, content})."""
    answer: str | None = None
    """The gold answer of a math row."""
    kind: str | None = None
    """The row's kind (math, code, swe)."""
    tests: str | None = None
    """A code row's tests: a verifier spec, {"inputs": [...], "outputs": [...]}, or a list of {stdin, stdout} cases (or a JSON string of one)."""
    task: str | None = None
    """A SWE row's task directory (relative to the data file's folder)."""
    files: str | None = None
    """A SWE row's list of repository files to show in its prompt."""
    id: str | None = None
    """A row id for logs and prompt metadata."""


class FileSource(Section):
    """Rows read from data files: relayrl's JSONL, verl's RL Parquet, TRL's prompt/solution, or anything `datasets` loads."""

    type: Literal["file"] = "file"
    """Selects this source."""
    path: Path
    """The training rows: a .jsonl, .json, .parquet, .csv or .arrow file, or a directory `datasets` saved (relative paths: to the working directory)."""
    held_out: Path | None = None
    """Held-out rows (`relayrl eval --config ... task`) in a file of their own; null: `held_out_fraction` of `path`."""
    held_out_fraction: float = Field(0.0, ge=0, lt=1)
    """Share of `path`'s rows kept out of training for evaluation, drawn by `task.seed` (when `held_out` is null)."""
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "arrow", "disk"] = "auto"
    """How to read the files; auto: by the file's extension (disk: a `save_to_disk` directory)."""
    layout: Literal["auto", "relayrl", "verl", "trl"] = "auto"
    """Which columns mean what; auto: verl when there is a `reward_model` column, trl when there is a `solution` column, else relayrl."""
    fields: FieldMap = FieldMap()
    """Columns that differ from the layout's."""
    kind: Kind = "math"
    """The kind of a row that names none."""
    shuffle: bool = True
    """Shuffle the training rows, anew each epoch, by `task.seed`."""
    epochs: int | None = Field(None, ge=1)
    """Passes over the training rows; after the last the learner trains what is in flight and stops. Null: endless."""


Source = Annotated[ProceduralSource | ReasoningGymSource | FileSource, Field(discriminator="type")]


SWE_TEMPLATE = """Fix the following issue in the repository.

<issue>
{problem_statement}
</issue>

<code>
{files}</code>

Reply with a unified diff (```diff) against the repository's root that `git apply` accepts."""


class SwePromptConfig(Section):
    """How a SWE row becomes a prompt: the problem statement, the relevant files, the request for a diff."""

    files: Literal["auto", "listed", "imports", "none"] = "auto"
    """Files shown: listed (the row's `files`), imports (repository modules the tests import), none; auto: listed when the row lists any, else imports."""
    max_file_chars: int = Field(20_000, gt=0)
    """Longest file shown in full; a longer one is cut with a note."""
    template: str = SWE_TEMPLATE
    """The prompt; `{problem_statement}` and `{files}` are filled in (files as `[start of PATH]`…`[end of PATH]` blocks)."""
    tasks_dir: Path | None = None
    """Where SWE-bench-style instances are converted into task directories; null: `.relayrl-swe/` beside the data file. Reward workers must see the same path."""


class TemplatesConfig(Section):
    """The text a math or code row's prompt is put in; `{prompt}` is the row's prompt (chat-message prompts are used as they are)."""

    math: str = "{prompt}"
    """A math row's prompt, e.g. `{prompt} Put the final answer in \\boxed{}.`"""
    code: str = "{prompt}"
    """A code row's prompt, e.g. `{prompt} Reply with a Python program in a ```python block.`"""

    @model_validator(mode="after")
    def _placeholder(self) -> TemplatesConfig:
        for kind in ("math", "code"):
            if "{prompt}" not in getattr(self, kind):
                raise ValueError(f"task.templates.{kind} must contain {{prompt}}")
        return self


class TaskConfig(Section):
    """Where prompts come from, and how they are put to the model."""

    source: Source = ProceduralSource()
    """Where rows come from: `type: procedural`, `reasoning_gym` or `file`."""
    seed: int = 0
    """Seed of the generators, of the shuffling of file rows and of the held-out fraction."""
    templates: TemplatesConfig = TemplatesConfig()
    """The text math and code rows' prompts are put in."""
    swe: SwePromptConfig = SwePromptConfig()
    """SWE rows' prompts."""
    chat: bool = False
    """Wrap each prompt in the policy tokenizer's chat template (instruct models); a row whose prompt is chat messages always is."""
    system: str | None = None
    """System message of the chat (chat only); null: the template's default (or the row's own)."""
    examples: list[ChatExample] = []
    """Worked examples put before the question as earlier chat turns (chat only)."""
    agent: AgentConfig | None = None
    """SWE rows as multi-turn agent episodes (tools in a sandbox per episode, graded on the final diff); null: one completion with a diff."""

    @model_validator(mode="after")
    def _chat_fields(self) -> TaskConfig:
        if not self.chat and (self.system is not None or self.examples):
            raise ValueError("task.system and task.examples need task.chat: true")
        return self
