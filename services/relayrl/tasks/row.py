"""A task row: what every source yields and the one thing `render` reads.

A row has a kind (`math`, `code`, `swe`: the verifier that scores it) and what that kind's
verifier needs: a gold answer (math), a test spec in the code verifier's format (code), or a
task directory in the format of docs/swe-tasks.md (swe). Rows from files carry where they came
from (`where`: "FILE: row N"), so every problem found in one, at load time or when it is
rendered, is a `DataError` that names the file, the row and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("math", "code", "swe")


class DataError(ValueError):
    """A data file or one of its rows cannot be used; the message names the file, row and field."""


@dataclass(frozen=True)
class Row:
    """One task: a prompt and what its kind's verifier checks the response against."""

    kind: str
    """The verifier kind: math, code or swe."""
    prompt: str | list[dict] | None
    """The prompt text, or chat messages ({role, content}); None for a SWE row, whose prompt is
    made from its task (problem statement and files)."""
    answer: str = ""
    """math: the gold answer."""
    tests: dict | None = None
    """code: the test spec, in the code verifier's format (`{"kind": "stdio" | "assert", ...}`)."""
    task: Path | None = None
    """swe: the task directory (absolute)."""
    files: tuple[str, ...] = ()
    """swe: repository files to show in the prompt (empty: as `task.swe.files` says)."""
    id: str = ""
    """The row's id, for logs and the prompt's metadata."""
    where: str = field(default="", compare=False)
    """Where the row came from ("FILE: row N"); empty for generated rows."""
    metadata: dict = field(default_factory=dict, compare=False)
    """Carried into the prompt's metadata untouched (e.g. verl's `data_source`)."""

    def error(self, field_name: str, message: str) -> DataError:
        """A DataError about `field_name` of this row."""
        return DataError(f"{self.where or 'row'}: {field_name}: {message}")
