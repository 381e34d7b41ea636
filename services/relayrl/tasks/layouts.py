"""The built-in layouts of a data row and the field map: which column means what, and the row it makes.

| layout | prompt | gold answer (math) | tests (code) | kind |
|---|---|---|---|---|
| relayrl | `prompt` | `answer` | `tests` | `kind`, else inferred |
| verl | `prompt` (chat messages) | `reward_model.ground_truth` | `reward_model.ground_truth` | `ability` when it names a kind |
| trl | `prompt` | `solution` | `tests` | `kind`, else inferred |

A relayrl row's SWE task is `task` (a task directory) or a SWE-bench-style instance
(`instance_id`, `problem_statement`, `FAIL_TO_PASS`, `PASS_TO_PASS`, ...; see `tasks.swe`), and
`files` lists the repository files its prompt shows. A row without a kind is `code` when it has
tests, `swe` when it has a task or an instance, else `task.source.kind`; verl rows take their kind
from `ability` (verl's own field) when it is math, code or swe, else from `task.source.kind`.
Auto-detection looks at the first row: a `reward_model` column means verl, a `solution` column
TRL, anything else relayrl. `task.source.fields` names other columns (dotted paths reach into
nested ones). verl's `data_source` travels in the prompt's metadata.
"""

from __future__ import annotations

from pathlib import Path

from relayrl.config.reward import CodeConfig
from relayrl.config.task import FieldMap, FileSource, SwePromptConfig
from relayrl.reward.errors import SpecError
from relayrl.tasks.code import to_spec
from relayrl.tasks.row import KINDS, DataError, Row
from relayrl.tasks.swe import INSTANCE_FIELDS, convert_instance, task_at, task_dir

LAYOUTS: dict[str, dict[str, str]] = {
    "relayrl": {"prompt": "prompt", "answer": "answer", "kind": "kind", "tests": "tests", "task": "task",
                "files": "files", "id": "id"},
    "verl": {"prompt": "prompt", "answer": "reward_model.ground_truth", "kind": "ability",
             "tests": "reward_model.ground_truth", "task": "extra_info.task", "files": "extra_info.files",
             "id": "extra_info.index"},
    "trl": {"prompt": "prompt", "answer": "solution", "kind": "kind", "tests": "tests", "task": "task",
            "files": "files", "id": "id"},
}
"""Layout -> logical field -> its column."""


def detect(record: object) -> str:
    """The layout of a file from its first record."""
    keys = record.keys() if isinstance(record, dict) else ()
    return "verl" if "reward_model" in keys else "trl" if "solution" in keys else "relayrl"


def columns(layout: str, fields: FieldMap) -> dict[str, str]:
    """Logical field -> column for `layout` with the field map's overrides."""
    return {**LAYOUTS[layout], **{k: v for k, v in fields.model_dump().items() if v is not None}}


def value(record: dict, path: str):
    """The value at a dotted column path, or None where any part is missing."""
    for part in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record


class RowMaker:
    """Turns the records of one data file into rows, checking every field a verifier will need."""

    def __init__(self, src: FileSource, path: Path, layout: str, swe: SwePromptConfig,
                 code: CodeConfig | None = None) -> None:
        self.src, self.path, self.layout, self.swe, self.code = src, path, layout, swe, code
        self.cols = columns(layout, src.fields)
        self.base = path.parent if path.is_file() else path

    def kind(self, rec: dict, where: str) -> str:
        kind = value(rec, self.cols["kind"])
        if isinstance(kind, str) and kind.lower() in KINDS:
            return kind.lower()
        if kind is not None and self.layout != "verl":
            raise DataError(f"{where}: {self.cols['kind']}: {kind!r} is not a kind (math, code, swe)")
        if self.layout != "verl" and value(rec, self.cols["tests"]) is not None:
            return "code"
        if self.layout != "verl" and (value(rec, self.cols["task"]) is not None or "instance_id" in rec):
            return "swe"
        return self.src.kind

    def prompt(self, rec: dict, where: str, kind: str) -> str | list[dict] | None:
        col = self.cols["prompt"]
        prompt = value(rec, col)
        if prompt is None and kind == "swe":
            return None  # made from the task: its problem statement and files
        if isinstance(prompt, str) and prompt.strip():
            return prompt
        if isinstance(prompt, list) and prompt and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in prompt):
            return [{"role": m["role"], "content": m["content"]} for m in prompt]
        what = "missing" if prompt is None else f"expected text or a list of {{role, content}} messages, got {prompt!r:.60}"
        raise DataError(f"{where}: {col}: {what}")

    def make(self, number: int, rec: object) -> Row:
        """The row of record `number`; DataError names the file, the row and the field at fault."""
        where = f"{self.path}: row {number}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object (a mapping of fields), got {type(rec).__name__}")
        kind = self.kind(rec, where)
        prompt = self.prompt(rec, where, kind)
        raw_id = value(rec, self.cols["id"])
        row = dict(kind=kind, prompt=prompt, id="" if raw_id is None else str(raw_id), where=where,
                   metadata={"data_source": rec["data_source"]} if isinstance(rec.get("data_source"), str) else {})
        if kind == "math":
            col = self.cols["answer"]
            answer = value(rec, col)
            if isinstance(answer, bool) or not isinstance(answer, str | int | float) or str(answer).strip() == "":
                what = "missing" if answer is None else f"expected a gold answer (text or a number), got {answer!r:.60}"
                raise DataError(f"{where}: {col}: {what}")
            return Row(**row, answer=str(answer))
        if kind == "code":
            col = self.cols["tests"]
            if value(rec, col) is None:
                raise DataError(f"{where}: {col}: missing (a code row needs its tests)")
            limits = (self.code.max_cases, self.code.max_timeout_s) if self.code else ()
            try:
                return Row(**row, tests=to_spec(value(rec, col), *limits))
            except SpecError as exc:
                raise DataError(f"{where}: {col}: {exc}") from None
        files = value(rec, self.cols["files"]) or []
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise DataError(f"{where}: {self.cols['files']}: expected a list of repository paths")
        if value(rec, self.cols["task"]) is not None:
            path = task_dir(where, value(rec, self.cols["task"]), self.base)
        elif all(f in rec for f in INSTANCE_FIELDS[:2]):
            path = convert_instance(where, rec, self.base, self.swe.tasks_dir)
        else:
            raise DataError(f"{where}: {self.cols['task']}: missing (a swe row needs a task directory, or a "
                            f"SWE-bench-style instance: {', '.join(INSTANCE_FIELDS)})")
        if not row["id"]:
            row["id"] = task_at(path).instance_id
        return Row(**row, task=path, files=tuple(files))
