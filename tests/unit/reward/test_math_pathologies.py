"""A labelled corpus of model-caused pathologies for the math verifier: every one is the model's
fault and must score `fail` (never `infra_error`, which is retried and then left out of
training, nor an exception), fast: the structural guard and the digit-string fast path answer
at once, the CPU budget within its seconds. Real math-verify in real worker processes."""

from __future__ import annotations

import time

import pytest

from relayrl.config import RewardConfig
from relayrl.reward.verifiers.math import MathVerifier
from relayrl.reward.verifiers.math_guard import shape, too_complex

CPU_S = 1.0


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(RewardConfig(workers=1, timeout_s=3.0, verify_cpu_s=CPU_S))
    yield v
    v.close()


def boxed(answer: str) -> str:
    return "<think>so</think><answer>\\boxed{" + answer + "}</answer>"


# (name, response, gold, how it must be stopped)
PATHOLOGIES = [
    ("integer_with_5000_digits", boxed("9" * 5000), "5", "fast"),
    ("negative_integer_with_20000_digits", boxed("-" + "7" * 19_000), "-7", "fast"),
    ("decimal_with_5000_digits", boxed("0." + "3" * 5000), "\\frac{1}{3}", "guard"),
    ("digits_inside_a_fraction", boxed("\\frac{1}{" + "9" * 3000 + "}"), "\\frac{1}{9}", "fast"),
    ("digits_inside_an_expression", boxed("\\sqrt{" + "9" * 500 + "}"), "3", "guard"),
    ("parentheses_3000_deep", boxed("(" * 3000 + "1" + ")" * 3000), "1", "guard"),
    ("parentheses_40_deep", boxed("(" * 40 + "1" + ")" * 40), "1", "guard"),
    ("fractions_300_deep", boxed("\\frac{1}{" * 300 + "2" + "}" * 300), "\\frac{1}{2}", "guard"),
    ("power_tower_of_four", boxed("9^{9^{9^{9}}}"), "5", "guard"),
    ("numeric_tower_of_two", boxed("10^{10^{10}}"), "5", "guard"),
    ("bare_power_chain", boxed("9**9**9**9"), "5", "guard"),
    ("exponent_with_8_digits", boxed("2^{10000000}"), "2", "guard"),
    ("factorial_of_100000", boxed("100000!"), "5", "guard"),
    ("enormous_response_ending_in_a_huge_sum", "x" * 10_000_000 + boxed("+".join(["x"] * 3000)), "1", "guard"),
    ("untagged_tail_nested_500_deep", "<think>hmm</think> " + "(" * 500 + "2", "2", "guard"),
    ("factorial_of_a_factorial", boxed("((99999)!)!"), "5", "budget"),  # passes every structural limit
]


@pytest.mark.parametrize("name,response,gold,stopped_by", PATHOLOGIES, ids=[p[0] for p in PATHOLOGIES])
def test_a_pathological_answer_fails_within_its_budget(verifier, name, response, gold, stopped_by):
    started = time.monotonic()
    score = verifier.score(response, gold)
    elapsed = time.monotonic() - started
    assert score.outcome == "fail", (score.outcome, score.details)
    assert score.components["accuracy"] == 0.0
    if stopped_by == "fast":
        assert score.details["path"] == "fast" and elapsed < 1.0
    elif stopped_by == "guard":
        assert score.details["path"] == "guard" and "too complex" in score.details["reason"] and elapsed < 1.0
    else:  # CPU time, not wall time: a loaded host makes it slower, not an infrastructure error
        assert "CPU s" in score.details["reason"], score.details
        assert elapsed < 10 * verifier.cfg.timeout_s


def test_honest_answers_as_complex_as_their_gold_still_verify(verifier):
    assert verifier.score(boxed("9" * 5000), "9" * 5000).outcome == "pass"  # exact, no conversion limit
    assert verifier.score(boxed("-0007"), "-7").outcome == "pass"
    assert verifier.score(boxed("e^{-x^{2}}"), "e^{-x^2}").outcome == "pass"  # a symbolic tower of two
    assert verifier.score(boxed("2^{2^{3}}"), "2^{2^{3}}").outcome == "pass"  # as complex as the gold allows
    assert verifier.score(boxed("((((1))))"), "1").outcome == "pass"
    assert verifier.score(boxed("2^{1000}"), "2^{1000}").outcome == "pass"


def test_the_guard_relaxes_each_limit_to_the_gold():
    deep = "(" * 20 + "x" + ")" * 20
    assert too_complex(shape(deep), shape("x")) is not None
    assert too_complex(shape(deep), shape(deep)) is None
    assert too_complex(shape("10^{10^{10}}"), shape("10^{10^{10}}")) is None
    assert "tower" in too_complex(shape("2^{2^{2^{2}}}"), shape("2"))
