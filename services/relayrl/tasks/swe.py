"""SWE rows: a task directory, or a SWE-bench-style instance converted into one; and their prompt.

A `swe` row names a task directory in the format of docs/swe-tasks.md (`task`, relative to the
data file's folder), or carries a SWE-bench-style instance: `instance_id`, `problem_statement`,
`FAIL_TO_PASS` and `PASS_TO_PASS` (lists of pytest node ids, or JSON strings of lists, as
SWE-bench stores them), and the repository at its base commit. Offline, that snapshot is a
directory or a tarball (.tar, .tar.gz, .tgz) in the dataset's folder: the row's `snapshot`, else
`<instance_id>/` or `<instance_id>.tar[.gz]` there. Optional: `test_patch` (applied to the
snapshot: the tests that judge the fix), `patch` (the gold fix, kept as gold.patch),
`test_files` (default: the files `test_patch` touches, else the files of the test ids),
`test_command`, `timeout_s`.

A conversion writes `<tasks_dir>/<instance_id>/` (task.json, repo/, gold.patch) once: the
directory records a fingerprint of the instance and its snapshot, and is rebuilt only when they
change. The task is then loaded as any task directory is, so an id that is not a pytest node id
or a test file that does not exist is an error naming the row. The reference a verifier gets is
the task directory's absolute path (reward workers must see the same path).

The prompt (`swe_prompt`): the problem statement and the relevant files, each in full, as
`[start of PATH]` … `[end of PATH]` (SWE-bench's oracle-retrieval layout), under `task.swe.template`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from relayrl.config.task import SwePromptConfig
from relayrl.reward.errors import TaskError
from relayrl.reward.swe.patch import touched_paths
from relayrl.reward.swe.task import SweTask, load_task
from relayrl.tasks.row import DataError, Row

INSTANCE_FIELDS = ("instance_id", "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS")
"""The fields that make a row a SWE-bench-style instance."""
TARBALLS = (".tar.gz", ".tgz", ".tar")
FINGERPRINT = ".relayrl-source"


@lru_cache(maxsize=4096)
def task_at(path: Path) -> SweTask:
    """The task in directory `path` (loaded once per process); TaskError says what is wrong."""
    return load_task(path)


def one_line(message: str) -> str:
    """A multi-line message (pydantic's) as one line, without its documentation links."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(line for line in lines if not line.startswith("For further information"))


def task_dir(row_where: str, value: object, base: Path) -> Path:
    """The task directory a row's `task` names (relative to the data file's folder), checked."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{row_where}: task: expected a task directory (a string)")
    path = (base / value).resolve()
    try:
        task_at(path)
    except TaskError as exc:
        raise DataError(f"{row_where}: task: {one_line(str(exc))}") from None
    return path


INSTANCE_NAMES = {"fail_to_pass": "FAIL_TO_PASS", "pass_to_pass": "PASS_TO_PASS"}
"""task.json's field -> the instance's."""


def _check(row_where: str, spec: dict) -> None:
    """The task.json an instance makes, validated before anything is written."""
    try:
        SweTask.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "instance"
        raise DataError(f"{row_where}: {INSTANCE_NAMES.get(name, name)}: {err['msg'].removeprefix('Value error, ')}") from None


def _ids(row_where: str, rec: dict, name: str) -> list[str]:
    value = rec.get(name)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise DataError(f"{row_where}: {name}: a string must be a JSON list of test ids") from None
    if value is None and name == "PASS_TO_PASS":
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{row_where}: {name}: expected a list of pytest node ids")
    return list(value)


def _snapshot(row_where: str, rec: dict, base: Path) -> Path:
    name = rec.get("snapshot")
    if name is not None:
        path = base / str(name)
        if not path.exists():
            raise DataError(f"{row_where}: snapshot: {path} does not exist")
        return path
    candidates = [base / rec["instance_id"], *(base / f"{rec['instance_id']}{ext}" for ext in TARBALLS)]
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        raise DataError(f"{row_where}: snapshot: none given and none of {', '.join(p.name for p in candidates)} "
                        f"in {base}")
    return found


def _fingerprint(rec: dict, snapshot: Path) -> str:
    h = hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode())
    files = [snapshot] if snapshot.is_file() else sorted(p for p in snapshot.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(snapshot) if p != snapshot else p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _unpack(row_where: str, snapshot: Path, repo: Path) -> None:
    """The snapshot's tree as `repo` (a tarball with one top-level directory is that directory)."""
    if snapshot.is_dir():
        shutil.copytree(snapshot, repo, ignore=shutil.ignore_patterns(".git", "__pycache__"), symlinks=True)
        return
    unpacked = repo.parent / "unpacked"
    try:
        with tarfile.open(snapshot) as tar:
            tar.extractall(unpacked, filter="data")  # no absolute paths, no links out of the tree
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{row_where}: snapshot: cannot unpack {snapshot}: {exc}") from None
    entries = list(unpacked.iterdir())
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
    top.rename(repo)


def _apply(row_where: str, repo: Path, patch: str) -> None:
    """Apply the instance's test patch (trusted data) to the snapshot."""
    result = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=repo, input=patch.encode(),
                            capture_output=True, timeout=120)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise DataError(f"{row_where}: test_patch: does not apply to the snapshot: {message[0] if message else ''}")


def convert_instance(row_where: str, rec: dict, base: Path, tasks_dir: Path | None) -> Path:
    """The task directory of a SWE-bench-style instance `rec`, converted now or earlier."""
    iid = rec.get("instance_id")
    if not isinstance(iid, str) or not iid or iid != Path(iid).name or iid.startswith("."):
        raise DataError(f"{row_where}: instance_id: expected a name usable as a directory name")
    if not isinstance(rec.get("problem_statement"), str) or not rec["problem_statement"].strip():
        raise DataError(f"{row_where}: problem_statement: expected the issue text")
    fail, passing = _ids(row_where, rec, "FAIL_TO_PASS"), _ids(row_where, rec, "PASS_TO_PASS")
    snapshot = _snapshot(row_where, rec, base)
    test_patch = rec.get("test_patch") or ""
    test_files = rec.get("test_files") or touched_paths(test_patch) or sorted({i.split("::", 1)[0] for i in fail + passing})
    spec = {"instance_id": iid, "problem_statement": rec["problem_statement"], "fail_to_pass": fail,
            "pass_to_pass": passing, "test_files": test_files,
            **{k: rec[k] for k in ("test_command", "timeout_s") if rec.get(k) is not None}}
    _check(row_where, spec)
    dest = (tasks_dir or base / ".relayrl-swe").resolve() / iid
    stamp = _fingerprint({**spec, "test_patch": test_patch, "patch": rec.get("patch")}, snapshot)
    if not ((dest / FINGERPRINT).is_file() and (dest / FINGERPRINT).read_text() == stamp):
        work = dest.parent / f".{iid}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        _unpack(row_where, snapshot, work / "repo")
        if test_patch:
            _apply(row_where, work / "repo", test_patch)
        (work / "task.json").write_text(json.dumps(spec, indent=2) + "\n")
        if rec.get("patch"):
            (work / "gold.patch").write_text(rec["patch"])
        (work / FINGERPRINT).write_text(stamp)
        shutil.rmtree(dest, ignore_errors=True)
        work.rename(dest)
        task_at.cache_clear()
    try:
        task_at(dest)
    except TaskError as exc:  # a test file or an id's file missing from the snapshot
        raise DataError(f"{row_where}: {one_line(str(exc))}") from None
    return dest


def imported_files(task: SweTask) -> list[str]:
    """Repository files (not tests) that the task's test files import."""
    repo, found = task.repo, []
    for rel in dict.fromkeys([*task.test_files, *(i.split("::", 1)[0] for i in task.test_ids)]):
        try:
            tree = ast.parse((repo / rel).read_text(errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                stem = Path(*name.split("."))
                for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
                    path = str(candidate)
                    if (repo / candidate).is_file() and path not in found and path not in task.test_files:
                        found.append(path)
    return found


def _shown(task: SweTask, path: str, max_chars: int) -> str:
    text = (task.repo / path).read_text(errors="replace")
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n... ({len(text) - max_chars} more characters not shown)\n"
    return f"[start of {path}]\n{text}{'' if text.endswith(chr(10)) else chr(10)}[end of {path}]\n"


def swe_prompt(row: Row, cfg: SwePromptConfig, template: str | None = None, tools: str = "") -> str:
    """The prompt of a SWE row: its problem statement and relevant files under the template
    (`cfg.template`, or an agent episode's `template` with its `tools` description)."""
    task = task_at(row.task)
    mode = cfg.files if cfg.files != "auto" else ("listed" if row.files else "imports")
    files = list(row.files) if mode == "listed" else imported_files(task) if mode == "imports" else []
    repo = task.repo.resolve()
    for path in files:
        full = (repo / path).resolve()
        if not full.is_relative_to(repo) or not full.is_file():
            raise row.error("files", f"{path} is not a file of the task's repository")
    values = {"problem_statement": task.problem_statement,
              "files": "".join(_shown(task, p, cfg.max_file_chars) for p in files), "tools": tools}
    return re.sub(r"\{(problem_statement|files|tools)\}", lambda m: values[m.group(1)], template or cfg.template)
