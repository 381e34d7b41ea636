"""Agent episodes through the real services: an actor (the tiny model, real sandboxes) leases SWE
prompts of examples/swe-mini, plays G episodes each, submits them to the reward service, which
grades them on the slow lane; the gateway reports the actors' episodes. And an actor killed in the
middle of its episodes leaves no sandbox behind and loses nothing: another actor re-leases the
prompt and its group is scored once.

The tiny model here is random (it writes no well-formed call: every turn is a malformed call, an
error observation), which is what these tests need: episodes that run their turns, observations
in the stream, the actor and the services' bookkeeping. Episodes that edit and submit, graded in
the sandbox, are the slow test tests/e2e/test_agent_swe.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml
from fastapi.testclient import TestClient

from relayrl.config import RunConfig, TinyModelConfig
from relayrl.gateway.app import create_app
from relayrl.gateway.settings import GatewaySettings
from relayrl.model.tiny import init_tiny
from relayrl.replay import RedisReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.reward.client import GrpcRewardClient
from relayrl.reward.server import serve as serve_reward
from relayrl.rollout.actor import Actor
from relayrl.rollout.engine import TransformersEngine
from relayrl.rollout.server import serve as serve_actor
from relayrl.weights.source import GrpcWeightSource
from relayrl.wire import common_pb2
from tests.integration.agent_helpers import sandbox_processes, wait_for

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["roman-numerals", "leap-years"]


@pytest.fixture(scope="module")
def ascii_model(tmp_path_factory):
    return init_tiny(tmp_path_factory.mktemp("ascii") / "model",
                     TinyModelConfig(alphabet="ascii", max_position_embeddings=2048))


def config(redis_url: str, run: str, **agent) -> RunConfig:
    return RunConfig.model_validate({
        "run": run, "queue": {"type": "redis", "url": redis_url, "lease_idle_s": 2.0},
        "task": {"agent": {"template": "{problem_statement}\n{tools}", "tools": ["bash", "submit"],
                           "max_turns": 2, "max_turn_tokens": 8, "warm_workspaces": 1, **agent}},
        "rollout": {"prompts_per_batch": 2, "sampling": {"group_size": 2}},
        "reward": {"slow_lane": {"kinds": ["swe"], "service_workers": 1, "lease_s": 5.0, "poll_s": 0.1}}})


def put_prompts(queue: RedisReplayQueue, run: str) -> None:
    keys = StreamKeys(run)
    queue.ensure_group(keys.prompts, StreamKeys.ACTORS)
    for i, name in enumerate(TASKS):
        task = ROOT / "examples" / "swe-mini" / name
        queue.put(keys.prompts, common_pb2.Prompt(prompt_id=f"{run}-p{i}", kind="swe", reference=str(task),
                                                  text=f"Fix {name}.").SerializeToString())


def scored(url: str, run: str, n: int, timeout_s: float = 120) -> list[common_pb2.Group]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        raw = redis.Redis.from_url(url).xrange(StreamKeys(run).groups)
        if len(raw) >= n:
            return [common_pb2.Group.FromString(f[b"d"]) for _, f in raw]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} scored groups after {timeout_s} s")


def test_an_actor_plays_episodes_the_reward_service_grades_them_and_the_gateway_reports_them(redis_url, ascii_model):
    cfg = config(redis_url, "agent-gw")
    queue = RedisReplayQueue(redis_url)
    put_prompts(queue, cfg.run)
    reward = serve_reward(cfg.reward, RedisReplayQueue(redis_url), cfg.run)
    actor = Actor(cfg, "actor-0", TransformersEngine(str(ascii_model)), queue, GrpcWeightSource("127.0.0.1:1"),
                  GrpcRewardClient(reward.address))
    server, port = serve_actor(actor, 0)
    try:
        assert actor.step() == 2
        groups = scored(redis_url, cfg.run, 2)
        settings = GatewaySettings(run=cfg.run, redis_url=redis_url, reward=reward.address,
                                   actors=[f"127.0.0.1:{port}"], auth_token="t")
        with TestClient(create_app(settings), headers={"Authorization": "Bearer t"}) as client:
            agent = client.get("/v1/agent").json()
            versions = client.get("/v1/versions").json()
    finally:
        server.stop(0)
        actor.close()
        reward.stop(grace=0)
    assert wait_for(lambda: sandbox_processes() == []), sandbox_processes()
    assert sorted(g.group_id for g in groups) == [f"{cfg.run}-p0", f"{cfg.run}-p1"]
    for g in groups:
        for s, score in zip(g.samples, g.scores):
            assert s.turns == 2 and s.finish_reason == "max_turns" and not s.infra_error
            assert 0 in s.loss_mask and s.loss_mask[0] == 1 and s.loss_mask[-1] == 1
            assert len(s.loss_mask) == len(s.completion_token_ids) == len(s.logprobs) == len(s.versions)
            assert s.text == ""  # the random model changed nothing: no diff
            assert score.outcome == common_pb2.OUTCOME_FAIL  # judged: no patch is the model's failure
    assert agent == {"episodes_in_flight": 0, "episodes": 4, "turns_per_episode": 2.0,
                     "episode_seconds": agent["episode_seconds"], "tool_calls": {"none": {"malformed": 8}},
                     "tool_errors": 8, "infra_retries": 0}
    assert agent["episode_seconds"] > 0
    assert versions["actors"][0]["agent"]["episodes"] == 4


def test_an_actor_killed_mid_episode_leaves_nothing_and_loses_nothing(redis_url, ascii_model, tmp_path):
    cfg = config(redis_url, "agent-kill", max_turns=200, max_turn_tokens=16)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    queue = RedisReplayQueue(redis_url)
    put_prompts(queue, cfg.run)
    reward = serve_reward(cfg.reward, RedisReplayQueue(redis_url), cfg.run)
    doomed = subprocess.Popen([sys.executable, "-m", "relayrl.cli", "serve", "actor", "--config", str(path),
                               "--model", str(ascii_model), "--learner", "127.0.0.1:1", "--reward", reward.address,
                               "--redis", redis_url, "--actor-id", "doomed"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # mid-episode: its four episodes' workspaces are up and their turns are being generated
        assert wait_for(lambda: len(sandbox_processes()) >= 4, 60), doomed.stderr.read1().decode()[-2000:]
        time.sleep(2.0)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
        assert wait_for(lambda: sandbox_processes() == []), f"sandboxes outlived the actor: {sandbox_processes()}"
        assert redis.Redis.from_url(redis_url).xlen(StreamKeys(cfg.run).groups) == 0  # it submitted nothing
        survivor = Actor(config(redis_url, "agent-kill"), "survivor", TransformersEngine(str(ascii_model)),
                         RedisReplayQueue(redis_url), GrpcWeightSource("127.0.0.1:1"), GrpcRewardClient(reward.address))
        try:
            deadline = time.monotonic() + 60
            while survivor.groups_generated < 2 and time.monotonic() < deadline:
                survivor.step()  # re-leases the dead actor's prompts once their leases expire
        finally:
            survivor.close()
        groups = scored(redis_url, cfg.run, 2)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        reward.stop(grace=0)
    assert sorted(g.group_id for g in groups) == [f"{cfg.run}-p0", f"{cfg.run}-p1"]  # each once
    assert all(g.prompt_deliveries == 2 and g.actor_id == "survivor" for g in groups)
    assert wait_for(lambda: sandbox_processes() == []), sandbox_processes()
