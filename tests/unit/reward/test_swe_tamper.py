"""The host side of the SWE judge's defences against forged reports: which patches are refused
before they run, and the sentinel tests each job plants (the sandboxed attacks that need them
are in tests/sandbox/test_swe_forgery.py)."""

from __future__ import annotations

from relayrl.reward.swe.tamper import plant_sentinels, refusal, tampering


def patch(path: str, *added: str, new: bool = False) -> str:
    head = f"diff --git a/{path} b/{path}\n" + ("new file mode 100644\n--- /dev/null\n" if new else f"--- a/{path}\n")
    return head + f"+++ b/{path}\n@@ -0,0 +1,{len(added)} @@\n" + "".join(f"+{line}\n" for line in added)


def test_code_that_reaches_into_the_runner_is_refused(tmp_path):
    (tmp_path / "pkg").mkdir()
    for line, found in [("import _pytest.reports", "_pytest"), ("from pluggy import HookimplMarker", "pluggy"),
                        ("import pytest", "pytest"), ("m = sys.modules['x']", "sys.modules"),
                        ("for o in gc.get_objects(): pass", "gc.get_objects"), ("f = sys._getframe(1)", "_getframe"),
                        ("sys.settrace(t)", "settrace"), ("mod = __import__(name)", "__import__")]:
        reason = refusal(patch("pkg/logic.py", "x = 1", line), tmp_path, ["tests/test_x.py"])
        assert reason is not None and found in reason, (line, reason)
    assert refusal(patch("pkg/logic.py", "import importlib", "x = importlib.import_module(name)"), tmp_path, []) is None


def test_files_the_harness_restores_are_not_scanned(tmp_path):
    assert refusal(patch("tests/test_x.py", "import pytest"), tmp_path, ["tests/test_x.py"]) is None
    assert refusal(patch("conftest.py", "import pytest", new=True), tmp_path, []) is None


def test_a_module_that_would_shadow_the_runner_or_the_stdlib_is_refused(tmp_path):
    for path in ("pytest.py", "_pytest/__init__.py", "pluggy/__init__.py", "json.py", "src/argparse.py"):
        assert "shadow" in refusal(patch(path, "x = 1", new=True), tmp_path, []), path
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "json.py").write_text("")  # the repository's own module of that name: its code
    assert refusal(patch("src/json.py", "x = 1"), tmp_path, []) is None
    assert refusal(patch("mypkg/util.py", "x = 1", new=True), tmp_path, []) is None
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")  # inside a package a submodule shadows nothing
    assert refusal(patch("pkg/json.py", "x = 1", new=True), tmp_path, []) is None
    assert refusal(patch("new/__init__.py", "", new=True) + patch("new/code.py", "x = 1", new=True), tmp_path, []) is None


def test_sentinels_are_fresh_collected_names_with_one_of_each_per_file():
    ids = ["tests/test_a.py::test_one", "tests/test_a.py::TestK::test_two", "tests/b_test.py::check_it[3]"]
    first, second = plant_sentinels(ids), plant_sentinels(ids)
    assert set(first.code) == {"tests/test_a.py", "tests/b_test.py"}
    assert len(first.must_fail) == len(first.must_pass) == 2
    assert set(first.must_fail).isdisjoint(second.must_fail)  # random per job
    assert all(n.split("::")[1].startswith("test_") for n in first.must_fail if n.startswith("tests/test_a.py"))
    assert all(n.split("::")[1].startswith("check_") for n in first.must_pass if n.startswith("tests/b_test.py"))
    namespace: dict = {}
    exec(first.code["tests/test_a.py"], namespace)
    outcomes = {}
    for node in first.must_fail + first.must_pass:
        if node.startswith("tests/test_a.py"):
            try:
                namespace[node.split("::")[1]]()
                outcomes[node] = "passed"
            except AssertionError:
                outcomes[node] = "failed"
    assert [outcomes[n] for n in first.must_fail if n in outcomes] == ["failed"]
    assert [outcomes[n] for n in first.must_pass if n in outcomes] == ["passed"]


def test_a_report_with_a_sentinel_out_of_place_is_forged():
    s = plant_sentinels(["t.py::test_x"])
    honest = {s.must_fail[0]: "failed", s.must_pass[0]: "passed", "t.py::test_x": "passed"}
    assert tampering(honest, s) is None
    assert "must fail" in tampering({**honest, s.must_fail[0]: "passed"}, s)
    assert "must fail" in tampering({k: v for k, v in honest.items() if k != s.must_fail[0]}, s)
    assert "must pass" in tampering({**honest, s.must_pass[0]: "failed"}, s)
