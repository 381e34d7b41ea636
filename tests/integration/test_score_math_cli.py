"""`relayrl score math` on responses a policy may produce: one JSON line, exit status 0, never a
traceback, whatever the response (a number of thousands of digits used to crash the integer
fast path; a power tower or deep nesting used to hang math-verify into an infrastructure error)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

RESPONSES = {
    "integer_with_5000_digits": "\\boxed{" + "9" * 5000 + "}",
    "power_tower": "\\boxed{9^{9^{9^{9}}}}",
    "parentheses_3000_deep": "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
    "unclosed_everything": "<answer>\\boxed{\\frac{" + "{" * 5000,
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_score_math_prints_one_verdict_and_no_traceback(name):
    proc = subprocess.run([sys.executable, "-m", "relayrl.cli", "score", "math", "--response", RESPONSES[name],
                           "--gold", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verdict["outcome"] == "fail", verdict
