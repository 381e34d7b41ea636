"""A code row's tests, in any of the layouts datasets use, as the code verifier's test spec.

Accepted (as an object, or a JSON string of one, as verl's `reward_model.ground_truth` holds it):

- the verifier's own spec: `{"kind": "stdio", "cases": [...]}` or `{"kind": "assert", ...}`
  (the format `relayrl score code` takes; see `relayrl.reward.verifiers.code_spec`);
- competitive programming's `{"inputs": [...], "outputs": [...]}` (APPS, TACO, CodeContests):
  strings are stdin and expected stdout of stdio cases; with `"fn_name"`, each input is the list
  of arguments of a call to that function and each output its return value (assert tests);
- a list of cases `[{"stdin": ..., "stdout": ...}, ...]` (`input` / `output` also accepted).

`timeout_s`, `early_stop` and `partial_credit` of an object carry over. The result is checked
with the verifier's own `parse_spec` (and the run's `reward.code` limits when given), so a test
the reward service would refuse is an error when the run starts, naming the row.
"""

from __future__ import annotations

import json

from relayrl.reward.errors import SpecError
from relayrl.reward.verifiers.code_spec import parse_spec

CARRIED = ("timeout_s", "early_stop", "partial_credit", "prefix", "suffix")
"""Keys of a tests object kept as they are in the spec."""


def _case(case: object, i: int) -> dict:
    if not isinstance(case, dict):
        raise SpecError(f"case {i} is not an object")
    stdin = case.get("stdin", case.get("input", ""))
    stdout = case.get("stdout", case.get("output"))
    if not isinstance(stdin, str) or not isinstance(stdout, str):
        raise SpecError(f"case {i} needs string stdin (or input) and stdout (or output)")
    return {"stdin": stdin, "stdout": stdout}


def _inputs_outputs(tests: dict) -> dict:
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs) or not inputs:
        raise SpecError("inputs and outputs must be non-empty lists of the same length")
    fn = tests.get("fn_name")
    if fn is None:
        return {"kind": "stdio", "cases": [_case({"stdin": i, "stdout": o}, n)
                                           for n, (i, o) in enumerate(zip(inputs, outputs))]}
    if not isinstance(fn, str) or not fn.isidentifier():
        raise SpecError(f"fn_name {fn!r} is not a Python identifier")
    asserts = []
    for n, (args, out) in enumerate(zip(inputs, outputs)):
        if not isinstance(args, list):
            raise SpecError(f"inputs[{n}] must be the list of {fn}'s arguments")
        asserts.append(f"assert {fn}(*{args!r}) == {out!r}")  # decoded JSON values: repr is a literal
    return {"kind": "assert", "entry_point": fn, "asserts": asserts}


def to_spec(tests: object, max_cases: int = 1_000_000, max_timeout_s: float = float("inf")) -> dict:
    """The verifier's spec for a row's `tests`; SpecError says what is wrong with them."""
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError as exc:
            raise SpecError(f"a string of tests must be JSON: {exc}") from None
    if isinstance(tests, list):
        spec = {"kind": "stdio", "cases": [_case(c, i) for i, c in enumerate(tests)]}
    elif isinstance(tests, dict) and tests.get("kind") in ("stdio", "assert"):
        spec = {k: v for k, v in tests.items() if v is not None}  # Parquet fills absent keys with null
    elif isinstance(tests, dict) and ("inputs" in tests or "outputs" in tests):
        spec = {**_inputs_outputs(tests), **{k: tests[k] for k in CARRIED if tests.get(k) is not None}}
    else:
        raise SpecError('expected a spec ({"kind": "stdio" | "assert", ...}), {"inputs": [...], "outputs": [...]} '
                        "or a list of {stdin, stdout} cases")
    parse_spec(json.dumps(spec), max_cases, max_timeout_s)
    return spec
