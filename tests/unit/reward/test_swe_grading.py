"""Patch extraction from responses, and grading by test id from JUnit XML (never from stdout)."""

from __future__ import annotations

from relayrl.reward.swe.grading import grade, parse_junit
from relayrl.reward.swe.patch import extract_patch, touched_paths

DIFF = "diff --git a/pkg/m.py b/pkg/m.py\n--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"


def test_fenced_diff_block_wins_and_the_last_one():
    other = DIFF.replace("a = 2", "a = 3")
    response = f"First try:\n```diff\n{DIFF}```\nBetter:\n```diff\n{other}```\n"
    assert extract_patch(response) == other


def test_unlabelled_fence_that_is_a_diff():
    assert extract_patch(f"```\n{DIFF}```") == DIFF
    assert extract_patch("```python\nprint(1)\n```") is None


def test_raw_diff_from_its_first_header():
    assert extract_patch(f"Here is the fix.\n{DIFF}") == DIFF
    no_newline = DIFF.rstrip("\n")
    assert extract_patch(no_newline) == DIFF
    only_minus = "--- a note, not a diff\nsome text\n"
    assert extract_patch(only_minus + DIFF) == DIFF


def test_no_patch():
    assert extract_patch("") is None
    assert extract_patch("I think the bug is in line 3.") is None
    assert extract_patch("```diff\n\n```") is None


def test_touched_paths():
    new = "--- /dev/null\n+++ b/conftest.py\n@@ -0,0 +1 @@\n+x\n"
    assert touched_paths(DIFF + new) == ["pkg/m.py", "conftest.py"]


REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="6">
<testcase classname="tests.test_m" name="test_ok" file="tests/test_m.py" line="1" time="0.01"/>
<testcase classname="tests.test_m" name="test_bad" file="tests/test_m.py" line="3"><failure message="x">x</failure></testcase>
<testcase classname="tests.test_m.TestC" name="test_p[1-2]" file="tests/test_m.py" line="7"/>
<testcase classname="tests.test_m" name="test_skip" file="tests/test_m.py" line="9"><skipped message="s"/></testcase>
<testcase classname="tests.test_m" name="test_teardown" file="tests/test_m.py" line="11"/>
<testcase classname="tests.test_m" name="test_teardown" file="tests/test_m.py" line="11"><error message="t"/></testcase>
<testcase classname="" name="tests.test_broken" time="0"><error message="collection failure"/></testcase>
</testsuite></testsuites>"""


def test_junit_maps_back_to_node_ids_with_worst_status():
    assert parse_junit(REPORT) == {
        "tests/test_m.py::test_ok": "passed", "tests/test_m.py::test_bad": "failed",
        "tests/test_m.py::TestC::test_p[1-2]": "passed", "tests/test_m.py::test_skip": "skipped",
        "tests/test_m.py::test_teardown": "error"}


def test_resolved_needs_every_required_test_to_pass():
    statuses = parse_junit(REPORT)
    ok = grade(statuses, ["tests/test_m.py::TestC::test_p[1-2]"], ["tests/test_m.py::test_ok"])
    assert ok.resolved and ok.failed_ids == []
    for bad in ("tests/test_m.py::test_bad", "tests/test_m.py::test_skip", "tests/test_m.py::test_teardown",
                "tests/test_broken.py::test_never_collected"):
        g = grade(statuses, [bad], ["tests/test_m.py::test_ok"])
        assert not g.resolved and g.failed_ids == [bad]
    assert grade(statuses, ["tests/test_m.py::test_ok"], ["tests/test_m.py::test_bad"]).resolved is False
    assert grade({}, ["tests/test_m.py::test_ok"], []).fail_to_pass == {"tests/test_m.py::test_ok": "missing"}
