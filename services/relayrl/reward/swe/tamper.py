"""What keeps a SWE patch from forging its own test report (host side).

The patched code runs inside pytest's process, so it can reach pytest's objects and rewrite the
report (a hookwrapper turning every outcome into "passed", a patched `TestReport`, the JUnit XML
rewritten at exit, a `pytest.py` that replaces the runner). No channel out of that process is
beyond the code's reach, so two defences work together:

1. **Refusal before running** (`refusal`): a patch fails without running when the code it adds
   (outside the test and pytest-configuration files the harness restores anyway) names the test
   runner (`pytest`, `_pytest`, `pluggy`, `junitxml`, `hookimpl`, `hookwrapper`) or uses the
   routes that reach it without naming it (`sys.modules`, `gc.get_objects` and its kin, frames:
   `sys._getframe`, `currentframe`, `f_back`, tracing: `settrace`, `setprofile`, `__import__`),
   or when it adds a module that would shadow one the test run imports: a top-level module or
   package (not inside a package of the repository) named like a standard-library module or like
   pytest and its dependencies (`pytest.py`, `json.py`, `_pytest/`) that the repository did not
   have.
2. **Sentinels** (`plant_sentinels`, `tampering`): every job plants randomly named tests into the
   restored test files, run in the same session as the required tests: some that must fail (a
   false assertion) and some that must pass. A report in which a must-fail sentinel did not fail,
   or a must-pass one did not pass, is forged: the sample fails. This catches any forgery that
   is not written to spare the sentinels: blanket rewriting of outcomes, however reached (names
   built at run time, an obfuscated import), a regenerated or edited report file, a replaced
   runner.

What this does not cover: a patch that reaches the runner by a route the scan does not know
(names assembled at run time, `importlib` with computed names, encoded code) *and* changes only
the reports of the required tests, telling them apart from the sentinels by their names or
content (the sentinels are visible in the test files). Closing that needs the tests to run out of
the code under test's process, which pytest tests cannot. A correct patch that needs one of the
refused names fails (a task whose repository is pytest itself cannot be scored).
"""

from __future__ import annotations

import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

_RUNNER = re.compile(r"\b(?:_?pytest|pluggy|junitxml|hookimpl|hookwrapper)\b")
_ROUTES = re.compile(r"sys\s*\.\s*modules|\bgc\s*\.\s*get_(?:objects|referrers|referents)|_getframe|currentframe"
                     r"|\bf_back\b|settrace|setprofile|__import__")
SHADOWABLE = frozenset(sys.stdlib_module_names) | {
    "pytest", "_pytest", "pluggy", "py", "iniconfig", "packaging", "exceptiongroup", "tomli", "attr", "_distutils_hack"}
"""Module names a patch may not add: the standard library's and the test runner's."""
PROTECTED = ("conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "sitecustomize.py",
             "usercustomize.py")
"""Files that steer pytest, restored from the snapshot by the harness (with *.pth)."""


def _files(patch: str) -> dict[str, list[str]]:
    """Each file a patch writes, with the lines it adds (a/ b/ prefixes stripped)."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in patch.splitlines():
        if line.startswith("+++ "):
            name = line[4:].split("\t", 1)[0].strip()
            name = name[2:] if name[:2] in ("a/", "b/") else name
            current = None if name == "/dev/null" else files.setdefault(name, [])
        elif line.startswith("rename to ") or line.startswith("copy to "):
            current = files.setdefault(line.split(" to ", 1)[1].strip(), [])
        elif line.startswith("+") and current is not None:
            current.append(line[1:])
    return files


def _top_level_module(path: str, repo: Path, written: set[str]) -> str | None:
    """The name `path` would import as from a directory on sys.path: a module or package whose
    directory is not itself a package (the repository root, a test directory pytest inserts, a
    src/ layout), or None (not Python, or a submodule of a package)."""
    p = Path(path)
    if p.suffix != ".py":
        return None
    name, parent = (p.parent.name, p.parent.parent) if p.name == "__init__.py" else (p.stem, p.parent)
    if str(parent) != "." and ((repo / parent / "__init__.py").exists() or str(parent / "__init__.py") in written):
        return None
    return name


def refusal(patch: str, repo: Path, restored: list[str]) -> str | None:
    """Why the patch may not run (it reaches into or replaces the test runner), or None."""
    files = _files(patch)
    for path, added in files.items():
        name = Path(path).name
        if path in restored or name in PROTECTED or name.endswith(".pth"):
            continue  # the harness puts these back as the snapshot has them: what they add never runs
        module = _top_level_module(path, repo, set(files))
        if module in SHADOWABLE and not (repo / path).exists():
            return f"the patch adds {path}, which would shadow the module {module!r} the test run imports"
        for line in added:
            if found := _RUNNER.search(line) or _ROUTES.search(line):
                return f"the patch's code reaches into the test runner: {found.group(0)!r} in {path}"
    return None


@dataclass
class Sentinels:
    """The sentinel tests of one job: node ids by expectation, and the code per test file."""

    must_fail: list[str] = field(default_factory=list)
    must_pass: list[str] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)


def plant_sentinels(test_ids: list[str]) -> Sentinels:
    """One must-fail and one must-pass test, freshly named, per test file of `test_ids`. Names
    start like the required tests' own (e.g. `test_`), so a repository's collection rules
    collect them too."""
    out = Sentinels()
    for file in sorted({node.split("::", 1)[0] for node in test_ids}):
        function = next(n.split("::")[-1].split("[", 1)[0] for n in test_ids if n.startswith(file + "::"))
        prefix = function[:function.index("_") + 1] if "_" in function else function[:4]
        code = ["\n"]
        for expectation in ("fail", "pass"):
            name = prefix + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12))
            a, b = secrets.randbelow(900) + 100, secrets.randbelow(900) + 100
            total = a + b + (secrets.randbelow(9) + 1 if expectation == "fail" else 0)
            code.append(f"\ndef {name}():\n    assert {a} + {b} == {total}\n")
            (out.must_fail if expectation == "fail" else out.must_pass).append(f"{file}::{name}")
        out.code[file] = "".join(code)
    return out


def tampering(statuses: dict[str, str], sentinels: Sentinels) -> str | None:
    """Why the report is forged (a sentinel's outcome is not what it must be), or None."""
    for node in sentinels.must_fail:
        if statuses.get(node, "missing") != "failed":
            return f"the test report is forged: sentinel {node} must fail and is {statuses.get(node, 'missing')}"
    for node in sentinels.must_pass:
        if statuses.get(node, "missing") != "passed":
            return f"the test report is forged: sentinel {node} must pass and is {statuses.get(node, 'missing')}"
    return None
