"""The SWE task format: a directory with `task.json` and `repo/`, and JSONL manifests of tasks.

A task is a repository at its base state (`repo/`, the tests that judge the fix included) and a
`task.json` (documented field by field in docs/swe-tasks.md):

    {"instance_id": "roman-1", "problem_statement": "...", "test_command": ["python", "-m", "pytest"],
     "fail_to_pass": ["tests/test_roman.py::test_four"], "pass_to_pass": ["tests/test_roman.py::test_one"],
     "test_files": ["tests/test_roman.py"], "timeout_s": 60}

A manifest is a JSONL file, one task per line: `{"task": "relative/or/absolute/dir"}` (other keys
are kept as metadata); relative paths are resolved against the manifest's directory. Loading
checks what can be checked without running anything (ids are pytest node ids inside the repo,
test files exist, no path escapes the repository), so a bad task is a clear error at load time
instead of a confusing zero at training time.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from relayrl.reward.errors import TaskError

TASK_FILE = "task.json"
REPO_DIR = "repo"


def _relative(path: str, what: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise ValueError(f"{what} {path!r} must be a relative path inside the repository")
    return str(p)


class SweTask(BaseModel):
    """One task's `task.json`; `root` is the task directory it was loaded from."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    problem_statement: str = Field(min_length=1)
    """The issue text the model is asked to fix."""
    fail_to_pass: list[str] = Field(min_length=1)
    """pytest node ids that fail at the base state and must pass after the patch."""
    pass_to_pass: list[str] = []
    """pytest node ids that pass at the base state and must still pass after the patch."""
    test_files: list[str] = Field(min_length=1)
    """Repository paths restored from the task after the patch is applied (a patch that edits the
    tests changes nothing); files a patch adds at these paths are removed."""
    test_command: list[str] = ["python", "-m", "pytest"]
    """The test runner's argv; a leading `python`/`python3` is the sandbox's interpreter. The
    harness appends the JUnit report option and the test files of the ids."""
    timeout_s: float = Field(60.0, gt=0, le=3600)
    """Deadline of the test run; a run past it fails (the patch hung the tests)."""
    instance_id: str = ""
    """A name for logs and reports; defaults to the task directory's name."""
    root: Path | None = Field(None, exclude=True)
    """The task directory (set by the loader, not read from the file)."""

    @field_validator("fail_to_pass", "pass_to_pass")
    @classmethod
    def _node_ids(cls, ids: list[str]) -> list[str]:
        for node in ids:
            _relative(node.split("::", 1)[0], "test id")
            if "::" not in node:
                raise ValueError(f"test id {node!r} must be a pytest node id (path::name)")
        return ids

    @field_validator("test_files")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        return [_relative(p, "test file") for p in paths]

    @field_validator("test_command")
    @classmethod
    def _command(cls, argv: list[str]) -> list[str]:
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError("test_command must be a non-empty list of arguments")
        return argv

    @model_validator(mode="after")
    def _disjoint(self) -> SweTask:
        both = set(self.fail_to_pass) & set(self.pass_to_pass)
        if both:
            raise ValueError(f"test ids in both fail_to_pass and pass_to_pass: {sorted(both)}")
        return self

    @property
    def repo(self) -> Path:
        assert self.root is not None, "a task built in memory has no repository"
        return self.root / REPO_DIR

    @property
    def test_ids(self) -> list[str]:
        return [*self.fail_to_pass, *self.pass_to_pass]


def load_task(path: str | Path) -> SweTask:
    """Read and check the task in directory `path`; TaskError says what is wrong."""
    root = Path(path).resolve()
    spec = root / TASK_FILE
    if not spec.is_file():
        raise TaskError(f"{root}: no {TASK_FILE}")
    if not (root / REPO_DIR).is_dir():
        raise TaskError(f"{root}: no {REPO_DIR}/ directory (the repository at its base state)")
    try:
        data = json.loads(spec.read_text())
        task = SweTask.model_validate({**data, "root": root})
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
        raise TaskError(f"{spec}: {exc}") from exc
    for rel in {*task.test_files, *(node.split("::", 1)[0] for node in task.test_ids)}:
        if not (task.repo / rel).is_file():
            raise TaskError(f"{spec}: {rel} does not exist in {REPO_DIR}/")
    if not task.instance_id:
        task.instance_id = root.name
    return task


def task_path(reference: str, tasks_root: Path | None) -> Path:
    """The task directory a prompt's reference names: a directory (absolute, or relative to
    `tasks_root`, else the working directory) or `{"task": "<dir>"}`; TaskError when malformed."""
    ref = reference.strip()
    if ref.startswith("{"):
        try:
            ref = json.loads(ref)["task"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TaskError(f'reference is not {{"task": "<dir>"}}: {exc!r}') from exc
        if not isinstance(ref, str):
            raise TaskError(f'the reference\'s task is {type(ref).__name__}, not a directory name')
    if not ref.strip():
        raise TaskError("the reference names no task directory")
    path = Path(ref)
    return path if path.is_absolute() else (tasks_root or Path.cwd()) / path


def load_manifest(path: str | Path) -> list[SweTask]:
    """Every task of a JSONL manifest, in order; TaskError names the line that is wrong."""
    path = Path(path)
    tasks, seen = [], set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise TaskError(f"{path}:{number}: not JSON: {exc}") from exc
        if not isinstance(entry, dict) or not isinstance(entry.get("task"), str):
            raise TaskError(f'{path}:{number}: expected an object with a "task" directory')
        try:
            task = load_task(path.parent / entry["task"])
        except TaskError as exc:
            raise TaskError(f"{path}:{number}: {exc}") from exc
        if task.instance_id in seen:
            raise TaskError(f"{path}:{number}: duplicate instance_id {task.instance_id!r}")
        seen.add(task.instance_id)
        tasks.append(task)
    if not tasks:
        raise TaskError(f"{path}: no tasks")
    return tasks
