"""Attacks on the SWE judge from inside the test process: patches whose code, imported by the
tests, forges pytest's report. Each resolves its task when the tests run without the judge's
defences (`test_every_forgery_resolves_its_task_unjudged`, the control), and must be `fail` with
them: refused before running where its code names or replaces the runner, and caught by the
sentinel tests where it does not (names built at run time, a report file rewritten at exit), and
by the sentinels alone when the refusal is switched off. Real sandbox, real pytest."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relayrl.config import RewardConfig
from relayrl.reward.swe.grading import grade, parse_junit
from relayrl.reward.swe.task import load_manifest
from relayrl.reward.verifiers import swe as swe_verifier
from relayrl.reward.verifiers.swe import SweVerifier

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")
MANIFEST = Path(__file__).resolve().parents[2] / "examples" / "swe-mini" / "manifest.jsonl"
TASKS = ("roman-numerals", "leap-years", "stack-peek")  # module-level tests and a class's

REWRITE_REPORTS = '''import _pytest.reports as _reports

_made = _reports.TestReport.from_item_and_call.__func__


def _passed(cls, item, call):
    report = _made(cls, item, call)
    report.outcome, report.longrepr = "passed", None
    return report


_reports.TestReport.from_item_and_call = classmethod(_passed)
'''
WRAP_HOOKS = '''import gc

import pytest


class _Pass:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome, report.longrepr = "passed", None


for _o in gc.get_objects():
    if type(_o).__name__ == "PytestPluginManager":
        _o.register(_Pass())
        break
'''
REWRITE_REPORTS_BY_BUILT_NAMES = '''import importlib

_reports = importlib.import_module("_py" + "test.rep" + "orts")
_cls = getattr(_reports, "Test" + "Report")
_made = _cls.from_item_and_call.__func__


def _passed(cls, item, call):
    report = _made(cls, item, call)
    report.outcome, report.longrepr = "passed", None
    return report


_cls.from_item_and_call = classmethod(_passed)
'''
REPORT_FILE_REWRITTEN_AT_EXIT = '''import atexit
import re
import sys


def _forge():
    args = sys.argv
    for i, arg in enumerate(args):
        if arg.startswith("--junit"):
            path = arg.split("=", 1)[1] if "=" in arg else args[i + 1]
            with open(path) as fh:
                text = fh.read()
            text = re.sub(r"<(failure|error)\\b.*?</\\1>|<(failure|error)\\b[^>]*/>", "", text, flags=re.S)
            with open(path, "w") as fh:
                fh.write(text)


atexit.register(_forge)
'''
FAKE_RUNNER = '''"""Not the test runner: a report in which every test function of the files passed."""
import ast
import os
import sys

args = sys.argv[1:]
cases = []
for arg in args:
    if arg.endswith(".py") and os.path.isfile(arg):
        module = arg[:-3].replace("/", ".")
        for node in ast.walk(ast.parse(open(arg).read())):
            if isinstance(node, ast.ClassDef):
                for fn in node.body:
                    if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test"):
                        cases.append((f"{module}.{node.name}", fn.name))
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("test") and node.col_offset == 0:
                cases.append((module, node.name))
        xml = "".join(f'<testcase file="{arg}" classname="{c}" name="{n}"/>' for c, n in cases)
        cases = []
        with open(args[args.index("--junitxml") + 1], "a") as fh:
            fh.write(xml)
path = args[args.index("--junitxml") + 1]
body = open(path).read()
with open(path, "w") as fh:
    fh.write("<testsuites><testsuite>" + body + "</testsuite></testsuites>")
'''


def diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                 "/dev/null" if before == "" else f"a/{path}", f"b/{path}")
    return f"diff --git a/{path} b/{path}\n" + ("new file mode 100644\n" if before == "" else "") + "".join(lines)


def forgeries(task) -> dict[str, str]:
    """Each forgery, on the unfixed code: only the report changes."""
    src_path = re.search(r"^\+\+\+ b/(\S+)", (task.root / "gold.patch").read_text(), re.M).group(1)
    src = (task.repo / src_path).read_text()
    in_source = {name: diff(src_path, src, code + "\n\n" + src) for name, code in (
        ("rewrite_reports", REWRITE_REPORTS), ("wrap_hooks", WRAP_HOOKS),
        ("rewrite_reports_by_built_names", REWRITE_REPORTS_BY_BUILT_NAMES),
        ("report_file_rewritten_at_exit", REPORT_FILE_REWRITTEN_AT_EXIT))}
    return {**in_source, "runner_replaced": diff("pytest.py", "", FAKE_RUNNER)}


@pytest.fixture(scope="module")
def tasks():
    return [t for t in load_manifest(MANIFEST) if t.instance_id in TASKS]


@pytest.fixture(scope="module")
def verifier():
    v = SweVerifier(RewardConfig())
    if reason := v.unavailable():
        pytest.fail(reason)
    return v


CAUGHT_BY = {"rewrite_reports": "refused", "wrap_hooks": "refused", "runner_replaced": "refused",
             "rewrite_reports_by_built_names": "tampered", "report_file_rewritten_at_exit": "tampered"}


@pytest.mark.parametrize("name", sorted(CAUGHT_BY))
def test_a_forged_report_is_fail(verifier, tasks, name):
    for task in tasks:
        score = verifier.score_patch(task, forgeries(task)[name])
        assert score.outcome == "fail", (task.instance_id, score.details)
        assert score.details.get(CAUGHT_BY[name]) is True, (task.instance_id, score.details)


@pytest.mark.parametrize("name", sorted(CAUGHT_BY))
def test_the_sentinels_alone_catch_every_forgery(verifier, tasks, name, monkeypatch):
    """With the refusal switched off, every forgery runs, and the sentinels still catch it."""
    monkeypatch.setattr(swe_verifier, "patch_refusal", lambda *args: None)
    for task in tasks:
        score = verifier.score_patch(task, forgeries(task)[name])
        assert score.outcome == "fail" and score.details.get("tampered") is True, (task.instance_id, score.details)
        assert set(score.details["fail_to_pass"].values()) == {"passed"}  # the forgery did work on the report


def test_gold_patches_pass_with_their_sentinels_as_expected(verifier, tasks):
    for task in tasks:
        score = verifier.score_patch(task, (task.root / "gold.patch").read_text())
        assert score.outcome == "pass", score.details
        sentinels = score.details["sentinels"]
        assert sorted(sentinels.values()) == ["failed", "passed"], sentinels  # one of each per test file


def _unjudged(task, patch: str, tmp: Path) -> bool:
    """Resolved when the patch is applied and the tests run on the host with no defence."""
    work = tmp / task.instance_id
    shutil.copytree(task.repo, work)
    subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=work, check=True)
    report = tmp / f"{task.instance_id}.xml"
    files = sorted({node.split("::", 1)[0] for node in task.test_ids})
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
                    "--junitxml", str(report), *files], cwd=work, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    return grade(parse_junit(report.read_text()), task.fail_to_pass, task.pass_to_pass).resolved


@pytest.mark.parametrize("name", sorted(CAUGHT_BY))
def test_every_forgery_resolves_its_task_unjudged(tasks, name, tmp_path):
    """Control: each forgery does forge the report when nothing defends it, so the tests above can fail."""
    task = next(t for t in tasks if t.instance_id == "roman-numerals")
    assert _unjudged(task, forgeries(task)[name], tmp_path)
    assert not _unjudged(task, (task.root / "wrong.patch").read_text(), tmp_path / "wrong")


# Kind 1 on the SWE harness: code under test that breaks the harness itself, so that the sample
# would be an infrastructure error (retried, then left out of training) instead of a failure.
INTERRUPT_THE_HARNESS = '''import os
import signal

os.kill(1, signal.SIGINT)
'''
HIDE_THE_REPORT = '''import atexit
import os
import sys


def _hide():
    report = sys.argv[sys.argv.index("--junitxml") + 1]
    os.chmod(os.path.dirname(report), 0)


atexit.register(_hide)
'''


@pytest.mark.parametrize("name,code", [("interrupt_the_harness", INTERRUPT_THE_HARNESS),
                                       ("hide_the_report", HIDE_THE_REPORT)])
def test_breaking_the_swe_harness_is_fail(verifier, tasks, name, code):
    task = next(t for t in tasks if t.instance_id == "roman-numerals")
    src_path = re.search(r"^\+\+\+ b/(\S+)", (task.root / "gold.patch").read_text(), re.M).group(1)
    src = (task.repo / src_path).read_text()
    score = verifier.score_patch(task, diff(src_path, src, code + "\n\n" + src))
    assert score.outcome == "fail", score.details
