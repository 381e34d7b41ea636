"""The base every configuration section shares: unknown keys are errors, each field's docstring is
its documentation (the README's reference table and `--help` texts are generated from them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A section of the run configuration: strict (a misspelt key is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
