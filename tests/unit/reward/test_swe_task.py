"""The SWE task format and manifest loader: good tasks load, bad ones say what is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relayrl.reward.errors import TaskError
from relayrl.reward.swe.task import load_manifest, load_task, task_path

ROOT = Path(__file__).resolve().parents[3]
GOOD = {"problem_statement": "fix it", "fail_to_pass": ["tests/test_a.py::test_x"],
        "pass_to_pass": ["tests/test_a.py::test_y"], "test_files": ["tests/test_a.py"], "timeout_s": 30}


def make_task(root: Path, **overrides) -> Path:
    (root / "repo" / "tests").mkdir(parents=True)
    (root / "repo" / "tests" / "test_a.py").write_text("def test_x(): pass\ndef test_y(): pass\n")
    (root / "task.json").write_text(json.dumps({**GOOD, **overrides}))
    return root


def test_shipped_manifest_loads():
    tasks = load_manifest(ROOT / "examples" / "swe-mini" / "manifest.jsonl")
    assert len(tasks) >= 10 and len({t.instance_id for t in tasks}) == len(tasks)
    assert all(t.repo.is_dir() and t.test_command == ["python", "-m", "pytest"] for t in tasks)


def test_good_task_defaults(tmp_path):
    task = load_task(make_task(tmp_path / "t1"))
    assert task.instance_id == "t1" and task.test_ids == ["tests/test_a.py::test_x", "tests/test_a.py::test_y"]
    assert task.repo == (tmp_path / "t1" / "repo").resolve()


@pytest.mark.parametrize("overrides, message", [
    ({"fail_to_pass": []}, "fail_to_pass"),
    ({"fail_to_pass": ["tests/test_a.py"]}, "pytest node id"),
    ({"test_files": ["../outside.py"]}, "relative path inside"),
    ({"test_files": ["/etc/passwd"]}, "relative path inside"),
    ({"test_files": ["tests/missing.py"]}, "does not exist"),
    ({"fail_to_pass": ["tests/test_b.py::test_x"]}, "does not exist"),
    ({"pass_to_pass": ["tests/test_a.py::test_x"]}, "both fail_to_pass and pass_to_pass"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"surprise": 1}, "surprise"),
    ({"test_command": []}, "test_command"),
])
def test_bad_task_is_a_clear_error(tmp_path, overrides, message):
    with pytest.raises(TaskError, match=message):
        load_task(make_task(tmp_path / "t", **overrides))


def test_missing_parts(tmp_path):
    with pytest.raises(TaskError, match="no task.json"):
        load_task(tmp_path)
    (tmp_path / "task.json").write_text("{")
    with pytest.raises(TaskError, match="no repo/"):
        load_task(tmp_path)
    (tmp_path / "repo").mkdir()
    with pytest.raises(TaskError, match="task.json"):
        load_task(tmp_path)


def test_manifest_errors_name_the_line(tmp_path):
    make_task(tmp_path / "a")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"task": "a"}\n\n# a comment\n{"task": "a"}\n')
    with pytest.raises(TaskError, match=r"m.jsonl:4: duplicate instance_id"):
        load_manifest(manifest)
    manifest.write_text('{"task": "a"}\n{"dir": "b"}\n')
    with pytest.raises(TaskError, match=r"m.jsonl:2: expected an object"):
        load_manifest(manifest)
    manifest.write_text('{"task": "nope"}\n')
    with pytest.raises(TaskError, match=r"m.jsonl:1: .*no task.json"):
        load_manifest(manifest)
    manifest.write_text("\n")
    with pytest.raises(TaskError, match="no tasks"):
        load_manifest(manifest)


@pytest.mark.parametrize("reference,says", [
    ('{"task": 5}', "int, not a directory name"), ('{"task": null}', "NoneType, not a directory name"),
    ('{"task": ""}', "names no task directory"), ("   ", "names no task directory"),
    ('{"task": ', 'reference is not {"task": "<dir>"}'), ('{"dir": "x"}', 'reference is not {"task": "<dir>"}')])
def test_a_reference_that_names_no_directory_is_a_task_error(reference, says):
    """The data's fault, refused when its group arrives: never a TypeError out of the service (a
    gRPC UNKNOWN, the prompt neither refused nor dead-lettered), never the working directory."""
    with pytest.raises(TaskError, match=re.escape(says)):
        task_path(reference, None)
