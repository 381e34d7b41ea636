"""Rows from data files, rendered by `relayrl.tasks.render`, judged by the real verifiers in the
bubblewrap sandbox: code rows in each tests layout (the converted spec passes a right program and
fails a wrong one; partial credit pays the share of cases; print_value's program is the response
between the spec's prefix and suffix), and a SWE-bench-style instance converted into a task
directory, whose prompt shows the problem and the files its tests import, and whose gold patch
the SWE verifier passes while an empty or wrong patch fails."""

from __future__ import annotations

import difflib
import io
import json
import shutil
import tarfile
from itertools import islice
from pathlib import Path

import pytest

from relayrl.config import CodeConfig, RewardConfig, TaskConfig
from relayrl.config.task import FileSource, ProceduralSource
from relayrl.tasks import DataError, Tasks, render, stream

ROOT = Path(__file__).resolve().parents[2]
ROMAN = ROOT / "examples" / "swe-mini" / "roman-numerals"

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")


@pytest.fixture(scope="module")
def code_verifier():
    from relayrl.reward.verifiers.code import CodeVerifier

    verifier = CodeVerifier(RewardConfig(code=CodeConfig(concurrency=2)))
    yield verifier
    verifier.close()


def rendered(path: Path, **source) -> list:
    t = Tasks(TaskConfig(source=FileSource(path=path, shuffle=False, **source)))
    return [render(r, t.cfg, None) for r in t.train]


def test_code_rows_in_every_tests_layout_are_judged_by_the_sandbox(tmp_path, code_verifier):
    rows = [
        {"prompt": "Print twice n.", "tests": {"inputs": ["2\n", "-4\n"], "outputs": ["4\n", "-8\n"]}},
        {"prompt": "Write add.", "tests": json.dumps({"fn_name": "add", "inputs": [[1, 2], [[1], [2]]],
                                                      "outputs": [3, [1, 2]]})},
        {"prompt": "Echo.", "tests": [{"stdin": "hi\n", "stdout": "hi\n"}]},
        {"prompt": "Write inc.", "tests": {"kind": "assert", "entry_point": "inc", "asserts": ["assert inc(1) == 2"]}},
    ]
    (tmp_path / "code.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    double, add, echo, inc = rendered(tmp_path / "code.jsonl")
    assert {p.kind for p in (double, add, echo, inc)} == {"code"}
    cases = [(double, "```python\nprint(int(input()) * 2)\n```", "print(int(input()) + 2)"),
             (add, "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"),
             (echo, "print(input())", "print('ho')"),
             (inc, "def inc(x):\n    return x + 1\n", "def inc(x):\n    return x\n")]
    for prompt, right, wrong in cases:
        good, bad = code_verifier.score(right, prompt.reference), code_verifier.score(wrong, prompt.reference)
        assert good.outcome == "pass", (prompt.reference, good.details)
        assert bad.outcome == "fail" and bad.reward == 0.0, (prompt.reference, bad.details)


def test_partial_credit_pays_the_share_of_cases_passed(tmp_path):
    from relayrl.reward.verifiers.code import CodeVerifier

    tests = {"inputs": ["1\n", "2\n", "3\n", "4\n"], "outputs": ["1\n", "4\n", "9\n", "12\n"]}
    (tmp_path / "sq.jsonl").write_text(json.dumps({"prompt": "Square n.", "tests": tests}) + "\n")
    [prompt] = rendered(tmp_path / "sq.jsonl")
    program = "n = int(input())\nprint(n * n)"  # right on three cases of four
    whole = CodeVerifier(RewardConfig(code=CodeConfig(concurrency=1)))
    partial = CodeVerifier(RewardConfig(code=CodeConfig(concurrency=1, partial_credit=True)))
    try:
        all_or_nothing = whole.score(program, prompt.reference)
        share = partial.score(program, prompt.reference)
    finally:
        whole.close()
        partial.close()
    assert all_or_nothing.outcome == "fail" and all_or_nothing.reward == 0.0
    assert share.outcome == "fail" and share.reward == pytest.approx(0.75)  # every case ran: no early stop
    assert [c["status"] for c in share.details["cases"]] == ["pass", "pass", "pass", "fail"]
    (tmp_path / "row.jsonl").write_text(json.dumps({"prompt": "Square n.", "tests": {**tests, "partial_credit": True}}) + "\n")
    [own] = rendered(tmp_path / "row.jsonl")
    verifier = CodeVerifier(RewardConfig(code=CodeConfig(concurrency=1)))
    try:
        assert verifier.score(program, own.reference).reward == pytest.approx(0.75)  # the row's own setting
    finally:
        verifier.close()


def test_print_value_runs_the_response_inside_print(code_verifier):
    rows = list(islice(stream(TaskConfig(source=ProceduralSource(name="print_value"), seed=5)), 3))
    for row in rows:
        target = row.tests["cases"][0]["stdout"]
        p = render(row, TaskConfig(), None)
        assert p.text == f"{target}=" and p.kind == "code"
        assert code_verifier.score(f" {target}", p.reference).outcome == "pass"
        assert code_verifier.score(f"0+{target}", p.reference).outcome == "pass"
        assert code_verifier.score(f"{target})", p.reference).outcome == "fail"  # print(7)) does not parse
        assert code_verifier.score(f"{int(target) + 1}", p.reference).outcome == "fail"


def _instance_dir(tmp_path: Path) -> tuple[Path, dict]:
    """A SWE-bench-style instance from the shipped roman-numerals task: its repository without the
    two tests that judge the fix as a tarball, those tests as `test_patch`, the fix as `patch`."""
    task = json.loads((ROMAN / "task.json").read_text())
    test_file = ROMAN / "repo" / "tests" / "test_convert.py"
    after = test_file.read_text()
    before = after.split("\n\ndef test_four_and_nine")[0] + "\n"
    assert "test_four_and_nine" not in before and "test_large_subtractive" not in before
    test_patch = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                              "a/tests/test_convert.py", "b/tests/test_convert.py"))
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "roman-1.tar.gz", "w:gz") as tar:
        for path in sorted((ROMAN / "repo").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(ROMAN / "repo")
                body = before.encode() if rel == Path("tests/test_convert.py") else path.read_bytes()
                info = tarfile.TarInfo(f"roman-1/{rel}")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    instance = {"instance_id": "roman-1", "repo": "example/romans", "base_commit": "0" * 40,
                "problem_statement": task["problem_statement"], "patch": (ROMAN / "gold.patch").read_text(),
                "test_patch": test_patch, "FAIL_TO_PASS": json.dumps(task["fail_to_pass"]),
                "PASS_TO_PASS": json.dumps(task["pass_to_pass"]), "version": "1.0"}
    return data, instance


def test_a_swe_bench_instance_becomes_a_task_its_gold_patch_resolves(tmp_path):
    from relayrl.reward.verifiers.swe import SweVerifier

    data, instance = _instance_dir(tmp_path)
    (data / "swe.jsonl").write_text(json.dumps(instance) + "\n")   # no kind: an instance is a swe row
    t = Tasks(TaskConfig(source=FileSource(path=data / "swe.jsonl")))
    [row] = t.train
    task_dir = data / ".relayrl-swe" / "roman-1"
    assert row.kind == "swe" and row.task == task_dir.resolve() and row.id == "roman-1"
    assert (task_dir / "gold.patch").read_text() == instance["patch"]
    spec = json.loads((task_dir / "task.json").read_text())
    assert spec["test_files"] == ["tests/test_convert.py"] and spec["fail_to_pass"] == json.loads(instance["FAIL_TO_PASS"])
    assert "test_four_and_nine" in (task_dir / "repo" / "tests" / "test_convert.py").read_text()  # test_patch applied
    prompt = render(row, t.cfg, None)
    assert instance["problem_statement"] in prompt.text
    assert "[start of romans/convert.py]" in prompt.text and "SYMBOLS = [(1000" in prompt.text
    assert "test_four_and_nine" not in prompt.text  # the tests that judge the fix are not shown
    verifier = SweVerifier(RewardConfig())
    try:
        gold = verifier.score(f"```diff\n{instance['patch']}```", prompt.reference)
        empty = verifier.score("I cannot fix this.", prompt.reference)
        wrong = verifier.score((ROMAN / "wrong.patch").read_text(), prompt.reference)
    finally:
        verifier.close()
    assert gold.outcome == "pass", gold.details
    assert empty.outcome == "fail" and wrong.outcome == "fail", (empty.details, wrong.details)
    # converted once: loading again reuses the directory; a changed instance rebuilds it
    stamp = (task_dir / ".relayrl-source").stat().st_mtime_ns
    Tasks(TaskConfig(source=FileSource(path=data / "swe.jsonl")))
    assert (task_dir / ".relayrl-source").stat().st_mtime_ns == stamp
    (data / "swe.jsonl").write_text(json.dumps({**instance, "problem_statement": "Subtractive notation."}) + "\n")
    [changed] = Tasks(TaskConfig(source=FileSource(path=data / "swe.jsonl"))).train
    assert "Subtractive notation." in render(changed, t.cfg, None).text


def test_a_broken_instance_is_one_line_naming_the_row_and_field(tmp_path):
    data, instance = _instance_dir(tmp_path)
    for change, expected in [({"FAIL_TO_PASS": "[not json"}, r"row 1: FAIL_TO_PASS: a string must be a JSON list"),
                             ({"FAIL_TO_PASS": '["test_convert.py"]'}, r"row 1: .*must be a pytest node id"),
                             ({"test_patch": "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"},
                              r"row 1: test_patch: does not apply"),
                             ({"instance_id": "../escape"}, r"row 1: instance_id: expected a name"),
                             ({"snapshot": "missing.tar"}, r"row 1: snapshot: .*missing\.tar does not exist")]:
        (data / "swe.jsonl").write_text(json.dumps({**instance, **change}) + "\n")
        with pytest.raises(DataError, match=expected) as err:
            Tasks(TaskConfig(source=FileSource(path=data / "swe.jsonl")))
        assert "\n" not in str(err.value)


def test_the_shipped_code_dataset_loads_and_its_gold_programs_pass(monkeypatch, code_verifier):
    from relayrl.config import RunConfig

    monkeypatch.chdir(ROOT)  # the shipped configs name their data relative to the repository root
    cfg = RunConfig.load(ROOT / "configs" / "code-mini.yaml")
    t = Tasks(cfg.task, cfg.reward.code)
    rows = [*t.train, *t.held_out()]
    assert len(t.train) >= 10 and len(t.held) >= 3 and {r.kind for r in rows} == {"code"}
    gold = {}
    for name in ("train.jsonl", "held_out.jsonl"):
        for line in (ROOT / "examples" / "code-mini" / name).read_text().splitlines():
            entry = json.loads(line)
            gold[entry["id"]] = entry["gold_program"]
    for row in rows:
        reference = render(row, TaskConfig(), None).reference
        good = code_verifier.score(f"Here:\n```python\n{gold[row.id]}```", reference)
        assert good.outcome == "pass", (row.id, good.details)
        assert code_verifier.score("```python\npass\n```", reference).outcome == "fail", row.id
    mixed = Tasks(RunConfig.load(ROOT / "configs" / "mixed-mini.yaml").task)
    assert {r.kind for r in mixed.train} == {"math", "code", "swe"}


def test_relayrl_eval_scores_a_file_tasks_held_out_rows_each_with_its_kind(tmp_path, tiny_model_dir):
    from relayrl.evaluation.runner import evaluate

    rows = [{"prompt": f"{i}+{i}=", "answer": str(2 * i)} for i in range(6)]
    rows += [{"prompt": f"{i}=", "tests": {"inputs": [""], "outputs": [str(i)], "prefix": "print(", "suffix": ")"}}
             for i in range(6)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = TaskConfig(source=FileSource(path=tmp_path / "d.jsonl", held_out_fraction=0.5), seed=2)
    held = list(Tasks(task).held_out())
    assert {r.kind for r in held} == {"math", "code"} and len(held) == 6
    samples = tmp_path / "samples.jsonl"
    report = evaluate(tiny_model_dir, ["task"], k=2, n=6, max_new_tokens=1, temperature=1.0, task=task,
                      samples_path=samples)
    figures = report["datasets"]["task"]
    assert figures["n"] == 6 and figures["infra_errors"] == 0
    written = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [w["prompt"] for w in written][::2] == [r.prompt for r in held]
    assert [w["reference"] for w in written][::2] == [render(r, task, None).reference for r in held]
    for w, row in zip(written, [r for r in held for _ in range(2)]):
        # one token of response: right exactly when it is the target (code: `print(t)` run in the
        # sandbox) or the answer (math: math-verify), so each kind's own verifier judged it
        target = row.answer if row.kind == "math" else row.tests["cases"][0]["stdout"]
        assert w["correct"] == (w["response"] == target), (row.kind, w)
