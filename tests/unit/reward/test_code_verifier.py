"""The code verifier on the real sandbox: spec validation, program extraction, per-case results,
early stop, the content-hash cache and idempotent request ids, the refusal without bubblewrap
and the weak mode a config may allow instead."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from relayrl.config import CodeConfig, RewardConfig, SandboxConfig
from relayrl.reward.errors import SpecError
from relayrl.reward.language import language_consistency
from relayrl.reward.verifiers.code import CodeVerifier, extract_program, parse_spec

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")
DOUBLE = json.dumps({"kind": "stdio", "timeout_s": 3, "cases": [
    {"stdin": "1\n", "stdout": "2\n"}, {"stdin": "5\n", "stdout": "10"}, {"stdin": "-3", "stdout": "-6\n"}]})


@pytest.fixture(scope="module")
def verifier():
    return CodeVerifier(RewardConfig(code=CodeConfig(concurrency=2)))


def test_spec_validation_says_what_is_wrong():
    for bad, message in [("nope", "not JSON"), ('{"kind": "x"}', '"kind"'),
                         ('{"kind": "stdio", "cases": []}', "non-empty list"),
                         ('{"kind": "stdio", "cases": [{"stdin": 1, "stdout": "x"}]}', "case 0"),
                         ('{"kind": "assert", "entry_point": "1f", "test": "x"}', "identifier"),
                         ('{"kind": "assert", "entry_point": "f"}', "needs a test"),
                         ('{"kind": "stdio", "timeout_s": 99, "cases": [{"stdout": ""}]}', "timeout_s")]:
        with pytest.raises(SpecError, match=message):
            parse_spec(bad, max_cases=10, max_timeout_s=30)


def test_program_is_the_last_fenced_block():
    assert extract_program("plan\n```python\nprint(1)\n```\nbetter:\n```py\nprint(2)\n```") == "print(2)\n"
    assert extract_program("print(3)") == "print(3)"


@needs_bwrap
def test_stdio_per_case_results_and_early_stop(verifier):
    right = verifier.score("```python\nprint(int(input()) * 2)\n```", DOUBLE)
    assert right.outcome == "pass" and right.reward == 1.0
    assert [c["status"] for c in right.details["cases"]] == ["pass"] * 3
    wrong = verifier.score("x = int(input())\nprint(x * 2 if x > 0 else 0)", DOUBLE)
    assert wrong.outcome == "fail" and [c["status"] for c in wrong.details["cases"]] == ["pass", "pass", "fail"]
    assert wrong.components["pass_rate"] == pytest.approx(2 / 3)
    first_wrong = verifier.score("print(0)", DOUBLE)
    assert len(first_wrong.details["cases"]) == 1 and first_wrong.details["stopped_early"] is True
    spec = json.loads(DOUBLE) | {"early_stop": False}
    assert len(verifier.score("print(0)", json.dumps(spec)).details["cases"]) == 3
    crash = verifier.score("print(2)\nraise SystemExit(3)", json.dumps({"kind": "stdio", "cases": [{"stdout": "2"}]}))
    assert crash.outcome == "fail" and crash.details["cases"][0]["detail"]["exit_code"] == 3


@needs_bwrap
def test_results_are_cached_by_content_and_request_ids_are_idempotent(verifier):
    program = "import time\ntime.sleep(0.3)\nprint(int(input()) * 2)\n"
    results = []
    threads = [threading.Thread(target=lambda: results.append(verifier.score(program, DOUBLE))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.details["cached"] for r in results) == [False, True, True]  # one job for three requests
    assert verifier.score(program, DOUBLE).details["cached"] is True
    spec = parse_spec(DOUBLE, 10, 30)
    first = verifier.run_job("print(int(input()) * 2)", spec, request_id="sample-1")
    again = verifier.run_job("print('something else')", spec, request_id="sample-1")
    assert first.outcome == again.outcome == "pass" and again.details["cached"] is True


@needs_bwrap
def test_a_malformed_spec_is_an_infra_error_and_long_programs_fail(verifier):
    assert verifier.score("print(1)", '{"kind": "stdio"}').outcome == "infra_error"
    small = CodeVerifier(RewardConfig(code=CodeConfig(max_program_chars=10)))
    assert small.score("print('a long program')", DOUBLE).outcome == "fail"


def test_without_bwrap_untrusted_code_is_refused_unless_weak_mode_is_allowed(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # a host without bubblewrap
    refused = CodeVerifier(RewardConfig())
    assert refused.health()["mode"] == "unavailable" and "refuses untrusted code" in refused.unavailable()
    weak = CodeVerifier(RewardConfig(sandbox=SandboxConfig(allow_weak=True)))
    assert weak.health()["mode"] == "weak" and weak.unavailable() is None
    score = weak.score("print(int(input()) * 2)", DOUBLE)
    assert score.outcome == "pass", score.details
    assert weak.score("print(0)", DOUBLE).outcome == "fail"


def test_language_consistency_is_the_share_of_words_in_the_prompts_script():
    assert language_consistency("<think>First add the numbers</think><answer>5</answer>", "What is 2+3?") == 1.0
    assert language_consistency("<think>先 add the numbers</think>", "What is 2+3?") == pytest.approx(3 / 4)
    assert language_consistency("<think>我们先把 \\frac{1}{2} 加起来</think>", "计算二加三") == 1.0
    assert language_consistency("<think>Сначала сложим числа</think>", "Сколько будет 2+3?") == 1.0
    assert language_consistency("<think>First add</think>", "Сколько будет 2+3?") == 0.0
    assert language_consistency("<think>2 + 3 = 5</think>", "What?") == 1.0


@needs_bwrap
def test_programs_run_as_python_dash_I_main_py_would(verifier):
    """The zygote forks each case's program instead of starting an interpreter: what a program
    can observe of that must match `python3 -I /tmp/main.py` (threads joined and atexit run at
    exit, exit codes, tracebacks naming the program's lines, `__main__`, argv, stdin)."""
    def case(program: str, stdout: str, stdin: str = "") -> dict:
        score = verifier.score(program, json.dumps({"kind": "stdio", "cases": [{"stdin": stdin, "stdout": stdout}]}))
        return score.details["cases"][0]

    threaded = ("import sys, threading\nthreading.stack_size(1 << 26)\ndef main():\n    import time\n"
                "    time.sleep(0.1)\n    print(sum(map(int, sys.stdin.read().split())))\n"
                "threading.Thread(target=main).start()\n")
    assert case(threaded, "6", "1 2 3")["status"] == "pass"
    assert case("import atexit\natexit.register(lambda: print('bye'))\nprint('hi')", "hi\nbye")["status"] == "pass"
    assert case("print(__name__, __file__, __import__('sys').argv)",
                "__main__ /tmp/main.py ['/tmp/main.py']")["status"] == "pass"
    exited = case("import sys\nprint('x')\nsys.exit(3)", "x")
    assert exited["status"] == "error" and exited["detail"]["exit_code"] == 3
    crashed = case("x = 1\ny = x / 0\n", "")
    assert crashed["detail"]["exit_code"] == 1
    assert 'File "/tmp/main.py", line 2' in crashed["detail"]["stderr"] and "ZeroDivisionError" in crashed["detail"]["stderr"]
    assert "SyntaxError" in case("def f(:\n  pass", "")["detail"]["stderr"]
