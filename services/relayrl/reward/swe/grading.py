"""Grading by test id from pytest's JUnit XML report (xunit1), never from the test output.

Each `<testcase>` names its file, class path and test name, which map back to the pytest node id
(`tests/test_x.py::TestA::test_b[1]`). A case passes only when it has no `<failure>`, `<error>`
or `<skipped>` child (an expected failure is reported as skipped, so it does not pass either); an
id with several cases (a teardown error after a passing call) takes the worst. Resolved iff every
`fail_to_pass` and every `pass_to_pass` id passed: an id missing from the report (not collected,
a collection error, a run killed at its deadline) counts as failed. Printing "PASSED" lines
changes nothing here: the output is not read.

The XML is parsed with the standard library's expat parser, which expands no external entities
and (expat >= 2.4.1) bounds entity amplification; its size is capped by the harness.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def node_id(case: ET.Element) -> str | None:
    """The pytest node id of an xunit1 `<testcase>` (None for one that names no test file)."""
    file, classname, name = case.get("file"), case.get("classname", ""), case.get("name", "")
    if not file or not file.endswith(".py") or not name:
        return None
    module = file[:-3].replace("/", ".")
    if classname != module and not classname.startswith(module + "."):
        return None
    classes = [c for c in classname[len(module):].split(".") if c]
    return "::".join([file, *classes, name])


def parse_junit(xml: str) -> dict[str, str]:
    """{node id: passed | skipped | failed | error} for every test case in the report."""
    root = ET.fromstring(xml)
    statuses: dict[str, str] = {}
    for case in root.iter("testcase"):
        nid = node_id(case)
        if nid is None:
            continue
        tags = {child.tag for child in case}
        status = ("error" if "error" in tags else "failed" if "failure" in tags
                  else "skipped" if "skipped" in tags else "passed")
        if RANK[status] >= RANK[statuses.get(nid, "passed")]:
            statuses[nid] = status
    return statuses


@dataclass
class Grade:
    resolved: bool
    fail_to_pass: dict[str, str]
    """Each required id and its status ("missing" when the report has no such case)."""
    pass_to_pass: dict[str, str]

    @property
    def failed_ids(self) -> list[str]:
        return [i for part in (self.fail_to_pass, self.pass_to_pass) for i, s in part.items() if s != "passed"]


def grade(statuses: dict[str, str], fail_to_pass: list[str], pass_to_pass: list[str]) -> Grade:
    f2p = {i: statuses.get(i, "missing") for i in fail_to_pass}
    p2p = {i: statuses.get(i, "missing") for i in pass_to_pass}
    ok = all(s == "passed" for s in (*f2p.values(), *p2p.values()))
    return Grade(ok, f2p, p2p)
