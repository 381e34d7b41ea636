"""The code verifier's test spec and how the program is taken from a response (no sandbox, no
metrics: the learner validates the specs of its code rows with `parse_spec` when a run starts).

The spec (JSON), one of two kinds:

    {"kind": "stdio", "cases": [{"stdin": "...", "stdout": "..."}], "timeout_s": 5}
    {"kind": "assert", "entry_point": "f", "test": "def check(candidate): ...", "timeout_s": 5,
     "prelude": "<trusted code both sides run first, e.g. HumanEval's prompt>",
     "asserts": ["assert f(1) == 2", ...]}

with optional keys: `early_stop` (stop at the first failing case), `partial_credit` (the accuracy
is the share of cases passed instead of all or nothing), and `prefix` / `suffix`, trusted code
the extracted program is put between (a completion task: the prompt's code, continued by the
response). The program is the last ```python fenced block of the response, or the whole response
when it has no fence.
"""

from __future__ import annotations

import json
import re

from relayrl.reward.errors import SpecError

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_program(response: str) -> str:
    """The last fenced code block of the response, or the whole response when it has none."""
    blocks = _FENCE.findall(response)
    return blocks[-1] if blocks else response


def parse_spec(reference: str, max_cases: int, max_timeout_s: float) -> dict:
    """Validate a JSON test spec; SpecError says what is wrong."""
    try:
        spec = json.loads(reference)
    except ValueError as exc:
        raise SpecError(f"test spec is not JSON: {exc}") from exc
    if not isinstance(spec, dict) or spec.get("kind") not in ("stdio", "assert"):
        raise SpecError('test spec must be an object with "kind": "stdio" or "assert"')
    timeout = spec.get("timeout_s", 5)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= max_timeout_s:
        raise SpecError(f"timeout_s must be a number in (0, {max_timeout_s}]")
    out = {"kind": spec["kind"], "timeout_s": float(timeout)}
    if "early_stop" in spec:
        out["early_stop"] = bool(spec["early_stop"])
    if "partial_credit" in spec:
        out["partial_credit"] = bool(spec["partial_credit"])
    for key in ("prefix", "suffix"):
        if not isinstance(spec.get(key, ""), str):
            raise SpecError(f"{key} must be a string")
        if spec.get(key):
            out[key] = spec[key]
    if spec["kind"] == "stdio":
        cases = spec.get("cases")
        if not isinstance(cases, list) or not cases:
            raise SpecError("a stdio spec needs a non-empty list of cases")
        for i, case in enumerate(cases):
            if not isinstance(case, dict) or not isinstance(case.get("stdout"), str) \
                    or not isinstance(case.get("stdin", ""), str):
                raise SpecError(f"stdio case {i} needs string fields stdin and stdout")
        out["cases"] = [{"stdin": c.get("stdin", ""), "stdout": c["stdout"]} for c in cases]
    else:
        entry = spec.get("entry_point")
        if not isinstance(entry, str) or not entry.isidentifier():
            raise SpecError("an assert spec needs an entry_point that is a Python identifier")
        test, asserts = spec.get("test", ""), spec.get("asserts", [])
        if not isinstance(test, str) or not (isinstance(asserts, list) and all(isinstance(a, str) for a in asserts)):
            raise SpecError("test must be a string and asserts a list of strings")
        if not test and not asserts:
            raise SpecError("an assert spec needs a test (defining check) or asserts")
        if not isinstance(spec.get("prelude", ""), str):
            raise SpecError("prelude must be a string")
        out.update(entry_point=entry, test=test, asserts=asserts, prelude=spec.get("prelude", ""))
        out["cases"] = [None] * ((1 if test else 0) + len(asserts))
    if len(out["cases"]) > max_cases:
        raise SpecError(f"{len(out['cases'])} cases exceed code.max_cases={max_cases}")
    return out


def program_of(response: str, spec: dict) -> str:
    """The program judged for `response` under a parsed spec: its prefix, the extracted program, its suffix."""
    return spec.get("prefix", "") + extract_program(response) + spec.get("suffix", "")
