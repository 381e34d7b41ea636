"""An agent's commands against its own workspace server, in the real sandbox: what a policy can try
with `bash` (kill the server, leave processes behind, fork, eat memory, flood the output, close
its output and hang, reach the network) or with the file tools (paths out of the repository,
links into /proc) leaves the session answering, every command bounded by its deadline, and
nothing of one command running into the next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayrl.config import AgentConfig, RewardConfig
from relayrl.reward.sandbox import Sandbox
from relayrl.reward.session import SandboxSession
from relayrl.reward.swe.workspace import SnapshotCache
from relayrl.rollout.tools import Observation, act
from relayrl.tasks.agent import CALL_CLOSE, CALL_OPEN

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "examples" / "swe-mini" / "roman-numerals" / "repo"


@pytest.fixture(scope="module")
def session():
    cfg = RewardConfig()
    s = SandboxSession.start(Sandbox(cfg.sandbox.with_limits(cfg.swe.limits)), cfg.sandbox.python,
                             SnapshotCache().get(REPO))
    yield s
    s.close()


def bash(session, command: str, timeout_s: float = 10.0, max_output: int = 4000) -> dict:
    return session.request("bash", timeout_s, command=command, max_output=max_output)


def others(session) -> list[str]:
    """The processes in the sandbox besides the server and the `ps` that lists them."""
    out = bash(session, "ps -eo pid=,args=")["output"].splitlines()
    return [line for line in out if not line.strip().startswith("1 ") and "ps -eo" not in line]


def alive(session) -> bool:
    return session.alive and bash(session, "echo ok")["output"] == "ok\n"


@pytest.mark.parametrize("command", ["kill -9 1", "kill -9 -1", "kill -STOP 1; echo stopped", "kill -TERM 1"])
def test_the_server_cannot_be_killed_from_inside(session, command):
    bash(session, command)
    assert alive(session)


def test_nothing_a_command_starts_outlives_it(session):
    assert bash(session, "sleep 300 & nohup sleep 300 >/dev/null 2>&1 & setsid sleep 300 & echo bg")["output"] == "bg\n"
    assert others(session) == []


def test_a_command_past_its_deadline_is_killed_with_what_it_started(session):
    reply = bash(session, "sleep 300 & exec >&-; sleep 300", timeout_s=1.0)
    assert reply["timed_out"] and reply["exit_code"] is None and reply["duration_s"] < 5
    reply = bash(session, ":(){ :|:& };:", timeout_s=2.0)  # a fork bomb, held by the pids limit
    assert reply["duration_s"] < 10
    assert others(session) == [] and alive(session)


def test_memory_and_output_floods_are_bounded(session):
    reply = bash(session, "python3 -c 'x = bytearray(8 << 30)'")
    assert reply["exit_code"] != 0 and "MemoryError" in reply["output"]
    reply = bash(session, "yes | head -c 50000000; echo done", max_output=1000)
    assert reply["truncated"] and len(reply["output"]) < 1200 and reply["output"].endswith("done\n")
    assert alive(session)


def test_no_network(session):
    reply = bash(session, "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), 2)\"")
    assert reply["exit_code"] != 0
    assert bash(session, "cat /sys/class/net/*/address 2>/dev/null | wc -l")["output"].strip() in ("0", "1")


@pytest.mark.parametrize("path", ["/proc/1/environ", "../../etc/passwd", "/proc/self/fd/0", "link-out"])
def test_file_tools_stay_inside_the_repository(session, path):
    bash(session, "ln -sfn /proc/1/fd link-out")
    assert "not a path inside" in session.request("view", 5, path=path, max_output=1000)["error"]
    assert "error" in session.request("create", 5, path=path, content="x")
    assert "error" in session.request("str_replace", 5, path=path, old="a", new="b")
    bash(session, "rm -f link-out")


def test_a_broken_baseline_is_an_error_reply_not_a_broken_session(session):
    reply = bash(session, "rm -rf /tmp/.base.git; echo gone")
    assert reply["output"] == "gone\n"
    assert "error" in session.request("diff", 10, max_output=1000)
    assert alive(session)


ARGS = st.dictionaries(st.sampled_from(["command", "path", "start", "end", "content", "old", "new", "x"]),
                       st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=30)
                       | st.lists(st.integers(), max_size=2), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["bash", "view", "create", "str_replace", "submit", "nope"]), args=ARGS,
       noise=st.text(max_size=40), broken=st.booleans())
def test_fuzz_any_turn_is_an_observation_and_the_session_survives(session, name, args, noise, broken):
    """Whatever a turn holds (well-formed calls with arbitrary arguments, broken JSON, noise), `act`
    gives an observation and the workspace keeps answering: a malformed call is the model's
    error, never a crash of the actor."""
    body = json.dumps({"name": name, "arguments": args})
    text = noise + CALL_OPEN + (body[:-3] if broken else body) + CALL_CLOSE + noise
    if name == "bash" and isinstance(args.get("command"), str):
        args["command"] = "echo " + json.dumps(args["command"])  # keep the commands harmless and quick
        text = noise + CALL_OPEN + json.dumps({"name": name, "arguments": args}) + CALL_CLOSE
    obs = act(session, text, AgentConfig(command_timeout_s=5, max_observation_chars=500))
    assert isinstance(obs, Observation) and obs.outcome in ("ok", "error", "timeout", "malformed")
    assert len(obs.text) <= 700
    assert session.alive
