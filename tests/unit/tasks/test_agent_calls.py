"""The tool-call format: well-formed calls are read exactly; anything else, however malformed (a
fuzz of hypothesis-made texts and of mutated calls), is a CallError whose message the model gets,
never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayrl.config import AgentConfig, RunConfig
from relayrl.config.errors import ConfigError
from relayrl.tasks.agent import CALL_CLOSE, CALL_OPEN, TOOLS, CallError, ToolCall, parse_call, schemas, tool_docs

ALL = list(TOOLS)


def call(name: str, arguments=None, key: str = "arguments") -> str:
    body = {"name": name} if arguments is None else {"name": name, key: arguments}
    return f"I will look first.\n{CALL_OPEN}\n{json.dumps(body)}\n{CALL_CLOSE}"


def test_well_formed_calls_are_read_exactly():
    assert parse_call(call("bash", {"command": "ls -la"}), ALL) == ToolCall("bash", {"command": "ls -la"})
    assert parse_call(call("view", {"path": "a.py", "start": 3}), ALL) == ToolCall("view", {"path": "a.py", "start": 3})
    assert parse_call(call("submit"), ALL) == ToolCall("submit", {})
    assert parse_call(call("submit", None), ALL).name == "submit"
    # Llama-style "parameters", and arguments as a JSON string (as some templates write them)
    assert parse_call(call("bash", {"command": "x"}, key="parameters"), ALL).arguments == {"command": "x"}
    assert parse_call(call("bash", json.dumps({"command": "x"})), ALL).arguments == {"command": "x"}
    # the first call of a turn counts; text around it is the model's own
    two = call("bash", {"command": "first"}) + call("bash", {"command": "second"})
    assert parse_call(two, ALL).arguments == {"command": "first"}


@pytest.mark.parametrize("text, says", [
    ("no call here", "No tool call"),
    (f"{CALL_OPEN}{{\"name\": \"bash\"", "not closed"),
    (f"{CALL_OPEN}not json{CALL_CLOSE}", "not valid JSON"),
    (f"{CALL_OPEN}[1, 2]{CALL_CLOSE}", "JSON object"),
    (f"{CALL_OPEN}{{\"arguments\": {{}}}}{CALL_CLOSE}", "JSON object"),
    (call("rm_rf", {}), "Unknown tool"),
    (call("bash", {}), "needs the argument 'command'"),
    (call("bash", {"command": 3}), "must be a string"),
    (call("view", {"path": "a", "start": True}), "must be a integer"),
    (call("view", {"path": "a", "start": "3"}), "must be a integer"),
    (call("bash", {"command": "ls", "sudo": True}), "takes no argument 'sudo'"),
    (call("bash", [1]), "must be a JSON object"),
    (call("bash", "{not json"), "not a JSON object"),
    (f"{CALL_OPEN}{'[' * 100_000}{CALL_CLOSE}", "not valid JSON"),  # nesting past the recursion limit
    (f"{CALL_OPEN}{{\"name\": \"view\", \"arguments\": {{\"path\": \"a\", \"start\": {'9' * 5000}}}}}{CALL_CLOSE}",
     "not valid JSON"),  # more digits than int() converts
])
def test_malformed_calls_are_errors_for_the_model(text, says):
    with pytest.raises(CallError, match=says):
        parse_call(text, ALL)


def test_a_tool_not_configured_is_unknown():
    with pytest.raises(CallError, match="Unknown tool 'bash'; the tools are: view, submit"):
        parse_call(call("bash", {"command": "ls"}), ["view", "submit"])


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_fuzz_any_text_is_a_call_or_a_call_error(text):
    for wrapped in (text, CALL_OPEN + text + CALL_CLOSE, CALL_OPEN + text):
        try:
            got = parse_call(wrapped, ALL)
        except CallError as exc:
            assert str(exc)
        else:
            assert got.name in ALL and isinstance(got.arguments, dict)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from([*ALL, "", "bash ", "BASH"]) | st.text(max_size=8), arguments=JSONISH,
       key=st.sampled_from(["arguments", "parameters", "args"]), cut=st.integers(0, 200))
def test_fuzz_mutated_calls_are_a_call_or_a_call_error(name, arguments, key, cut):
    text = call(name, arguments, key)
    for variant in (text, text[:len(text) - cut], text.replace('"', "'", 1)):
        try:
            got = parse_call(variant, ALL)
        except CallError:
            continue
        spec = TOOLS[got.name]
        assert set(got.arguments) <= set(spec.arguments)
        assert all(k in got.arguments for k, (_, required, _) in spec.arguments.items() if required)


def test_docs_and_schemas_describe_the_configured_tools():
    cfg = AgentConfig(tools=["bash", "submit"], command_timeout_s=7, max_observation_chars=900)
    docs = tool_docs(cfg)
    assert "- bash {\"command\": string}" in docs and "- submit {}" in docs and "view" not in docs
    assert "7 s" in docs and "900 characters" in docs and CALL_OPEN in docs
    assert [s["function"]["name"] for s in schemas(cfg)] == ["bash", "submit"]
    assert schemas(cfg)[0]["function"]["parameters"]["required"] == ["command"]


def test_agent_config_needs_submit_and_a_problem_statement():
    with pytest.raises(ConfigError, match="task.agent.tools.*must include submit"):
        RunConfig.parse({"task": {"agent": {"tools": ["bash"]}}})
    with pytest.raises(ConfigError, match="task.agent.template.*problem_statement"):
        RunConfig.parse({"task": {"agent": {"template": "no placeholder"}}})
    with pytest.raises(ConfigError, match="task.agent.tools"):
        RunConfig.parse({"task": {"agent": {"tools": ["bash", "sudo", "submit"]}}})
