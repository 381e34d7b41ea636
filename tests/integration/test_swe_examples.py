"""The shipped SWE tasks (examples/swe-mini) through the real SWE verifier and bubblewrap sandbox.

Gold patches resolve every task; empty and wrong patches resolve none; and so does every
tampering patch: one that edits the tests (each test returns at once), one that adds a
conftest.py hook rewriting every report to "passed", one that prints fake PASSED lines, one that
exits the test process early with status 0, and one that breaks collection. The tampering patches
are shown to work where the judge does not restore the tests (`test_tampering_would_pass_unjudged`),
so these tests can fail. The jobs run in parallel, one per core.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relayrl.config import RewardConfig
from relayrl.reward.swe.grading import grade, parse_junit
from relayrl.reward.swe.task import load_manifest
from relayrl.reward.verifiers.swe import SweVerifier

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "examples" / "swe-mini" / "manifest.jsonl"
CONFTEST_HOOK = '''import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
'''


def diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                 "/dev/null" if before == "" else f"a/{path}", f"b/{path}")
    header = f"diff --git a/{path} b/{path}\n" + ("new file mode 100644\n" if before == "" else "")
    return header + "".join(lines)


def source_file(task) -> str:
    """The module the gold patch fixes."""
    return re.search(r"^\+\+\+ b/(\S+)", (task.root / "gold.patch").read_text(), re.M).group(1)


def tampering(task) -> dict[str, str]:
    test_file = task.test_files[0]
    tests = (task.repo / test_file).read_text()
    src_path = source_file(task)
    src = (task.repo / src_path).read_text()
    returns = re.sub(r"^(\s*)def (test_\w+)\((.*)\):\n", lambda m: f"{m.group(0)}{m.group(1)}    return\n", tests,
                     flags=re.M)
    fake_lines = "".join(f"print({f'{i} PASSED'!r})\n" for i in task.test_ids) + \
        f"print('=== {len(task.test_ids)} passed in 0.01s ===')\n"
    return {
        "edit_tests": diff(test_file, tests, returns),
        "conftest_hook": diff("conftest.py", "", CONFTEST_HOOK),
        "fake_passed": diff(src_path, src, src + fake_lines),
        "exit_early": diff(src_path, src, "import os\nos._exit(0)\n" + src),
        "break_collection": diff(src_path, src, src + "\ndef broken(:\n"),
    }


@pytest.fixture(scope="module")
def tasks():
    return load_manifest(MANIFEST)


@pytest.fixture(scope="module")
def results(tasks):
    verifier = SweVerifier(RewardConfig())
    if reason := verifier.unavailable():
        pytest.fail(reason)
    jobs = []
    for task in tasks:
        variants = {"gold": (task.root / "gold.patch").read_text(), "empty": "",
                    "wrong": (task.root / "wrong.patch").read_text(), **tampering(task)}
        jobs += [(task, name, patch) for name, patch in variants.items()]
    with ThreadPoolExecutor(verifier.concurrency) as pool:
        scores = list(pool.map(lambda job: verifier.score_patch(job[0], job[2]), jobs))
    return {(task.instance_id, name): score for (task, name, _), score in zip(jobs, scores)}


def outcomes(results, variant):
    return {task: score.outcome for (task, name), score in results.items() if name == variant}


def test_manifest_ships_ten_tasks_or_more(tasks):
    assert len(tasks) >= 10
    assert all(t.fail_to_pass and (t.root / "gold.patch").is_file() for t in tasks)


def test_gold_patches_resolve_every_task(results, tasks):
    got = outcomes(results, "gold")
    assert got == {t.instance_id: "pass" for t in tasks}, {k: results[(k, "gold")].details for k, v in got.items()
                                                           if v != "pass"}


@pytest.mark.parametrize("variant", ["empty", "wrong"])
def test_empty_and_wrong_patches_resolve_none(results, tasks, variant):
    assert outcomes(results, variant) == {t.instance_id: "fail" for t in tasks}


def test_wrong_patches_apply_and_fail_by_test_id(results, tasks):
    for t in tasks:
        details = results[(t.instance_id, "wrong")].details
        assert details["apply"]["ok"], details
        statuses = {**details["fail_to_pass"], **details["pass_to_pass"]}
        assert set(statuses) == set(t.test_ids) and "failed" in statuses.values()


@pytest.mark.parametrize("variant", ["edit_tests", "conftest_hook", "fake_passed", "exit_early", "break_collection"])
def test_tampering_patches_resolve_none(results, tasks, variant):
    assert outcomes(results, variant) == {t.instance_id: "fail" for t in tasks}
    for t in tasks:
        details = results[(t.instance_id, variant)].details
        assert details["apply"]["ok"], details  # judged on its tests, not refused at the door
        if variant == "edit_tests":
            assert t.test_files[0] in details["restored"]
        if variant == "conftest_hook":
            assert "conftest.py" in details["restored"]
        if variant in ("exit_early", "break_collection"):
            assert set(details["fail_to_pass"].values()) <= {"missing", "error"}


def _unjudged(task, patch: str, tmp: Path) -> bool:
    """Resolved when the patch is applied and the tests run on the host without any restoring."""
    work = tmp / task.instance_id
    shutil.copytree(task.repo, work)
    subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=work, check=True)
    report = tmp / f"{task.instance_id}.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
                    f"--junitxml={report}", *task.test_files], cwd=work, capture_output=True,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return grade(parse_junit(report.read_text()), task.fail_to_pass, task.pass_to_pass).resolved


def test_tampering_would_pass_unjudged(tasks, tmp_path):
    """Control: without restoring the test files the edit and the hook would resolve a task,
    and grading by stdout would be fooled by the fake lines: so the tests above can fail."""
    task = next(t for t in tasks if t.instance_id == "roman-numerals")
    patches = tampering(task)
    assert _unjudged(task, patches["edit_tests"], tmp_path / "a")
    assert _unjudged(task, patches["conftest_hook"], tmp_path / "b")
    assert not _unjudged(task, (task.root / "wrong.patch").read_text(), tmp_path / "c")


def test_fenced_response_is_extracted_and_scored(tasks):
    verifier = SweVerifier(RewardConfig())
    task = tasks[0]
    gold = (task.root / "gold.patch").read_text()
    response = f"The bug is in the loop.\n\n```diff\n{gold}```\n\nThis fixes it."
    assert verifier.score(response, str(task.root)).outcome == "pass"
    assert verifier.score("I could not find the bug.", str(task.root)).outcome == "fail"
    assert verifier.score(response, str(task.root / "no-such-task")).outcome == "infra_error"
