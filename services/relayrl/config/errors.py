"""A configuration mistake as one line per problem: the file, the key path, what is wrong, and for
a misspelt key the nearest valid one — never a traceback or pydantic's multi-line dump."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from relayrl.config.moved import moved_to


class ConfigError(ValueError):
    """A run configuration that cannot be used; `str()` is ready to print (one line a problem)."""

    def __init__(self, source: str | Path, problems: list[str]) -> None:
        self.source, self.problems = str(source), problems
        super().__init__("\n".join(f"{self.source}: {p}" for p in problems))


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field can hold (several for a discriminated union)."""
    out: list[type[BaseModel]] = []
    for a in (*get_args(annotation), annotation):
        if isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
        else:
            out += [b for b in get_args(a) if isinstance(b, type) and issubclass(b, BaseModel)]
    return list(dict.fromkeys(out))  # once each: `Section | None` names its model twice above


def _walk(root: type[BaseModel], loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """The dotted key path of `loc` without the union tags pydantic inserts into it, and the
    section that holds its last key (None where the path leaves the configuration's models)."""
    out: list[str] = []
    model: type[BaseModel] | None = root
    holder: type[BaseModel] | None = root
    parts = list(loc)
    while parts:
        name = str(parts.pop(0))
        out.append(name)
        holder = model
        field = model.model_fields.get(name) if model is not None else None
        options = _submodels(field.annotation) if field is not None else []
        if len(options) > 1 and parts:  # a discriminated union: the next element is the tag
            tag = parts.pop(0)
            options = [m for m in options if "type" in m.model_fields and m.model_fields["type"].default == tag]
        model = options[0] if options else None
    return ".".join(out), holder


def describe(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per pydantic error: `key.path: what is wrong (got VALUE)`; an unknown key gets the
    nearest valid one, a key that moved its new place."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, holder = _walk(root, loc) if loc else ("", None)
        if err["type"] == "extra_forbidden" and (new := moved_to(path)):
            problems.append(f"{path}: this key moved to {new}")
            continue
        if err["type"] == "extra_forbidden":
            names = list(holder.model_fields) if holder is not None else []
            close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else (f" (valid here: {', '.join(names)})" if names else "")
            problems.append(f"{path}: unknown key{hint}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error" and (not path or message.startswith(path.split(".")[0] + ".")):
            problems.append(message)  # a cross-field check that names its keys itself
            continue
        got = err.get("input")
        shown = "" if err["type"] in ("missing",) or isinstance(got, dict | list) else f" (got {got!r})"
        problems.append(f"{path}: {message}{shown}")
    return problems
