"""The math verifier with real math-verify in real worker processes: R1's accuracy and format
rules, answer extraction, the special-token hack, the response cap and the deadline."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from relayrl.config import RewardConfig, RewardWeights
from relayrl.reward.verifiers.answer import extract_answer, format_reward, last_boxed, strip_trailing_special
from relayrl.reward.verifiers.base import Score
from relayrl.reward.verifiers.math import MathVerifier
from relayrl.reward.verifiers.math_exact import fast_compare
from relayrl.reward.verifiers.registry import VERIFIERS, create, kinds


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(RewardConfig(workers=2, timeout_s=5.0, weights=RewardWeights(accuracy=1.0, format=0.5)))
    yield v
    v.close()


def test_correct_and_incorrect_answers(verifier):
    right = verifier.score("<think>2+3</think><answer>5</answer>", "5")
    assert (right.outcome, right.reward, right.components) == ("pass", 1.5, {"accuracy": 1.0, "format": 1.0})
    wrong = verifier.score("<think>2+3</think><answer>6</answer>", "5")
    assert (wrong.outcome, wrong.reward, wrong.components) == ("fail", 0.5, {"accuracy": 0.0, "format": 1.0})
    assert verifier.score("so it is \\boxed{x^2 + 1}", "1 + x^2").outcome == "pass"
    assert verifier.score("so it is \\boxed{x^2 - 1}", "1 + x^2").outcome == "fail"
    assert verifier.score("I give up", "5").outcome == "fail"


def test_fractions_and_decimals_agree(verifier):
    assert verifier.score("\\boxed{\\frac{1}{2}}", "0.5").outcome == "pass"
    assert verifier.score("\\boxed{0.5}", "\\frac{1}{2}").outcome == "pass"
    assert verifier.score("<answer>$\\dfrac{3}{4}$</answer>", "0.75").outcome == "pass"
    assert verifier.score("\\boxed{\\frac{1}{3}}", "0.5").outcome == "fail"


def test_boxed_extraction_keeps_nested_braces():
    assert last_boxed("first \\boxed{1} then \\boxed{\\frac{1}{\\sqrt{2}}} end") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"
    assert last_boxed("\\boxed{1} and an unclosed \\boxed{2") is None
    assert last_boxed("no box") is None


def test_answer_tag_wins_over_boxed_and_the_last_tag_counts(verifier):
    assert extract_answer("\\boxed{7} <answer>3</answer>") == ("3", "answer_tag")
    assert extract_answer("<answer>1</answer><answer>\\boxed{2}</answer>") == ("2", "answer_tag")
    assert extract_answer("<think>maybe 4</think> it is 5") == ("it is 5", "response")
    assert verifier.score("<answer>1</answer> ... <answer>2</answer>", "2").outcome == "pass"
    # The tag's content is one expression: listing candidates does not pass.
    assert verifier.score("<answer>1 2 3 4 5</answer>", "5").outcome == "fail"


def test_format_reward_follows_r1_regex():
    pattern = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)
    cases = ["<think>a</think><answer>1</answer>", "  <think>\na\n</think>\n<answer>1</answer>\n",
             "<think>a</think>b</think><answer>1</answer>", "<answer>1</answer>", "<think>a</think>",
             "<think>a</think><answer>1</answer> trailing", "<think></think><answer></answer>",
             "<think>a</think> x <answer>1</answer>", "<think>a</think><answer>1</answer></answer>"]
    for text in cases:
        assert format_reward(text) == (1.0 if pattern.match(text) else 0.0), text


def test_special_tokens_inside_the_answer_do_not_verify(verifier):
    for response in ["5<bos>5", "5<bos>5<bos>", "\\boxed{5<bos>5}", "<answer>5<pad>5</answer>",
                     "<answer><|im_end|>5</answer>", "<think>x</think> 5</s>5"]:
        score = verifier.score(response, "5")
        assert score.outcome == "fail" and score.components["accuracy"] == 0.0, response
    # Trailing EOS / padding after a finished answer changes nothing.
    assert strip_trailing_special("<answer>5</answer><|im_end|><pad> <pad>") == "<answer>5</answer>"
    assert verifier.score("<think>a</think><answer>5</answer><eos><pad>", "5").reward == 1.5


def test_fast_path_compares_plain_numbers_without_sympy(verifier):
    assert fast_compare("42", "42") is True
    assert fast_compare("$-7$", "-7") is True
    assert fast_compare("41", "42") is False
    assert fast_compare("2.50", "2.5") is True
    assert fast_compare("\\frac{1}{2}", "0.5") is True  # exact rational arithmetic, no sympy
    assert fast_compare("-\\dfrac{2}{4}", "\\frac{-1}{2}") is True and fast_compare("3/4", "\\frac{3}{4}") is True
    assert fast_compare("\\frac{1}{3}", "\\frac{1}{4}") is False
    assert fast_compare("0.333", "\\frac{1}{3}") is None  # a decimal keeps math-verify's rounding
    assert fast_compare("\\frac{1}{0}", "1") is None and fast_compare("\\sqrt{2}", "1") is None
    score = verifier.score("<answer>12345678901234567890</answer>", "12345678901234567890")
    assert score.outcome == "pass" and score.details["path"] == "fast"


def test_long_responses_are_cut_to_their_tail():
    v = MathVerifier(RewardConfig(workers=1, max_response_chars=1000))
    try:
        score = v.score("x" * 1_000_000 + " \\boxed{17}", "17")
        assert score.outcome == "pass" and score.details["truncated"] is True
        # The opening <think> was cut off with the head: no format reward.
        assert v.score("<think>" + "y" * 5000 + "</think><answer>3</answer>", "3").components["format"] == 0.0
    finally:
        v.close()


def test_a_stopped_worker_is_an_infra_error_and_the_pool_recovers():
    """A worker that makes no CPU progress (stopped, or starved by a host so loaded it never
    runs) is the infrastructure's fault, whatever the answer."""
    v = MathVerifier(RewardConfig(workers=1, timeout_s=1.0))
    try:
        (pid,) = v.workers.pids()
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        stuck = v.score("\\boxed{\\sqrt{4}}", "2")
        assert stuck.outcome == "infra_error" and "without CPU progress" in stuck.details["error"], stuck.details
        assert stuck.reward == 0.0 and time.monotonic() - started < 5
        after = v.score("\\boxed{\\sqrt{4}}", "2")
        assert after.outcome == "pass" and after.details["path"] == "math-verify"
    finally:
        v.close()


def test_a_dead_worker_is_an_infra_error_and_the_pool_is_replaced():
    v = MathVerifier(RewardConfig(workers=1))
    try:
        for pid in v.workers.pids():  # kill the worker as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        crashed = v.score("\\boxed{\\sqrt{4}}", "2")
        assert crashed.outcome == "infra_error" and "died" in crashed.details["error"]
        assert v.score("\\boxed{\\sqrt{4}}", "2").outcome == "pass"
    finally:
        v.close()


def test_registry_and_proto_round_trip():
    assert "math" in kinds()
    assert {"code", "swe"} <= set(kinds())
    assert all(cls.kind == kind for kind, cls in VERIFIERS.items())
    with pytest.raises(KeyError, match="no verifier for kind 'lean'"):
        create("lean", RewardConfig())
    score = Score("fail", 0.5, {"accuracy": 0.0, "format": 1.0}, {"answer": "6"}, 0.01)
    assert Score.from_proto(score.to_proto()) == score
    assert Score.from_dict(json.loads(json.dumps(score.to_dict()))) == score


def test_math_lane_has_more_threads_than_worker_processes(verifier):
    assert verifier.lane_workers() == verifier.cfg.workers + 4  # fast-path samples need no process slot


# A labelled corpus: (response, gold, label) with label True when the answer is right. Known
# math-verify false positives are in it; the rates are printed, and none may be wrong.
CORPUS = [
    ("\\boxed{\\frac{1}{2^{99}}}", "\\frac{1}{2^{98}}", False),
    ("\\boxed{1/2^{99}}", "1/2^{98}", False),
    ("\\boxed{1-1/e}", "1+1/e", False),
    ("\\boxed{1-\\frac{1}{e}}", "1+\\frac{1}{e}", False),
    ("\\boxed{10^{-10}}", "0", False),
    ("\\boxed{1.0000001}", "1", False),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", False),
    ("\\boxed{\\sqrt{2}}", "\\sqrt{3}", False),
    ("\\boxed{x^2+1}", "x^2-1", False),
    ("\\boxed{(1, 2)}", "(2, 1)", False),
    ("\\boxed{2\\pi}", "\\pi", False),
    ("\\boxed{e^{2}}", "e^{3}", False),
    ("\\boxed{3^{100}}", "3^{100}+1", False),
    ("\\boxed{\\frac{1}{3^{40}}}", "\\frac{2}{3^{40}}", False),
    ("<answer>-5</answer>", "5", False),
    ("\\boxed{2^{-99}}", "\\frac{1}{2^{99}}", True),
    ("\\boxed{1 - e^{-1}}", "1-1/e", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", True),
    ("\\boxed{x^2 + 1}", "1 + x^2", True),
    ("\\boxed{3^{100}}", "3^{100}", True),
    ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True),
    ("\\boxed{2\\pi}", "2\\pi", True),
    ("\\boxed{\\dfrac{3}{4}}", "0.75", True),
    ("<answer>$12$</answer>", "12", True),
    ("\\boxed{(1, 2)}", "(1, 2)", True),
    ("\\boxed{e^{2}}", "e^2", True),
    ("\\boxed{\\frac{1}{3^{40}}}", "3^{-40}", True),
    ("\\boxed{1+\\frac{1}{e}}", "1+1/e", True),
]


def test_labelled_corpus_false_positive_and_negative_rates(verifier):
    false_pos = [(r, g) for r, g, label in CORPUS if not label and verifier.score(r, g).outcome == "pass"]
    false_neg = [(r, g) for r, g, label in CORPUS if label and verifier.score(r, g).outcome != "pass"]
    negatives, positives = sum(not label for *_, label in CORPUS), sum(label for *_, label in CORPUS)
    print(f"math corpus: false-positive rate {len(false_pos)}/{negatives} = {len(false_pos) / negatives:.3f}, "
          f"false-negative rate {len(false_neg)}/{positives} = {len(false_neg) / positives:.3f}")
    assert false_pos == [] and false_neg == []


def test_oversized_gold_is_a_data_error(verifier):
    score = verifier.score("\\boxed{1}", "1" * 200_000)
    assert score.outcome == "infra_error" and "max_reference_chars" in score.details["error"]
