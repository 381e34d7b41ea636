"""The configuration reference (the README's table): every section and field with its default and
its docstring, generated from the models so it cannot drift (`scripts/gen_config_reference.py`)."""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def reference_markdown(root: type[BaseModel] | None = None) -> str:
    """Markdown tables, one per section, `key | default | meaning`; required keys say so."""
    from relayrl.config.run import RunConfig

    lines: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        rows, subs = [], []
        for name, field in model.model_fields.items():
            ann = field.annotation
            models = [a for a in (get_args(ann) or (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
            for a in get_args(ann):  # Annotated[Union[...], Field(discriminator=...)]
                models += [b for b in get_args(a) if isinstance(b, type) and issubclass(b, BaseModel)]
            if models:
                subs.append((f"{prefix}{name}", models, field.description or ""))
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, str) and "\n" in default:  # a template: its first line stands for it
                default = default.split("\n", 1)[0] + " …"
            shown = "required" if default is PydanticUndefined else f"`{'null' if default is None else default}`"
            rows.append(f"| `{prefix}{name}` | {shown} | {field.description or ''} |")
        if rows:
            lines.extend(["| key | default | meaning |", "|---|---|---|", *rows, ""])
        for path, models, doc in subs:
            for sub in models:
                title = f"`{path}`" + (f" (`type: {sub.model_fields['type'].default}`)" if "type" in sub.model_fields else "")
                lines.extend([f"#### {title}", "", doc or (sub.__doc__ or "").strip().splitlines()[0], ""])
                walk(sub, f"{path}.")

    walk(root or RunConfig, "")
    return "\n".join(lines).rstrip() + "\n"
