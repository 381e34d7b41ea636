"""The gateway against a real run in miniature: real Redis, a real reward server, a real learner
(gRPC, tiny model) and a real actor generating and submitting groups; the gateway reports what
they did, pauses the learner's admission, guards mutations with the token, survives a dead
service, answers 503 without Redis (and from the run directory once a run has finished), refuses
unknown query parameters, serves /docs without internet and its own /metrics, and keeps to its
OpenAPI schema (schemathesis)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from relayrl.config import LearnerConfig, PublishConfig, RedisQueue, RolloutConfig, RunConfig
from relayrl.gateway.app import create_app
from relayrl.gateway.settings import GatewaySettings
from relayrl.replay.private_redis import free_port

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def world(redis_url, tiny_model_dir, tmp_path):
    """A learner, a reward service and one actor of run `gw`, wired over Redis and gRPC."""
    from relayrl.learner.server import serve as serve_learner
    from relayrl.learner.trainer import Learner
    from relayrl.replay import RedisReplayQueue
    from relayrl.reward.client import GrpcRewardClient
    from relayrl.reward.server import serve as serve_reward
    from relayrl.rollout.actor import Actor
    from relayrl.rollout.engine import TransformersEngine
    from relayrl.rollout.server import serve as serve_actor
    from relayrl.weights.source import GrpcWeightSource

    cfg = RunConfig(run="gw", queue=RedisQueue(url=redis_url), rollout=RolloutConfig(prompts_per_batch=3),
                    learner=LearnerConfig(batch_groups=4, weights=PublishConfig(wire_dtype="float32")))
    reward = serve_reward(cfg.reward, RedisReplayQueue(redis_url), cfg.run)
    learner = Learner(cfg, RedisReplayQueue(redis_url), str(tiny_model_dir), tmp_path / "learner")
    learner_server, learner_port = serve_learner(learner, 0)
    learner.publish()
    actor = Actor(cfg, "actor-0", TransformersEngine(str(tiny_model_dir)), RedisReplayQueue(redis_url),
                  GrpcWeightSource(f"127.0.0.1:{learner_port}"), GrpcRewardClient(reward.address))
    actor_server, actor_port = serve_actor(actor, 0)
    gw = GatewaySettings(run="gw", redis_url=redis_url, learner=f"127.0.0.1:{learner_port}", reward=reward.address,
                         actors=[f"127.0.0.1:{actor_port}"], auth_token=TOKEN)
    yield {"learner": learner, "actor": actor, "reward": reward, "settings": gw}
    actor_server.stop(0)
    learner_server.stop(0)
    reward.stop(grace=0)


def wait_scored(client: TestClient, groups: int, timeout_s: float = 60) -> dict:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get("/v1/queues").json()
        if body["groups"]["length"] >= groups:
            return body
        time.sleep(0.1)
    raise TimeoutError(f"fewer than {groups} scored groups after {timeout_s} s")


def test_gateway_reports_a_live_run_and_pauses_admission(world):
    learner, actor = world["learner"], world["actor"]
    with TestClient(create_app(world["settings"]), headers=AUTH) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        admitted = learner.admit()
        assert admitted == (1 + 1) * 4  # (max_staleness + 1) * batch_groups
        assert actor.step() == 3
        queues = wait_scored(client, 3)
        assert queues["prompts"]["length"] == admitted and queues["prompts"]["consumer_group"] == "actors"
        assert queues["prompts"]["waiting"] == admitted - 3
        assert queues["groups"]["waiting"] == 3 and queues["groups"]["leased"] == 0
        assert queues["swe"]["length"] == 0 and queues["dead"]["consumer_group"] is None

        status = client.get("/v1/status").json()
        assert status["run"] == "gw" and status["paused"] is False and status["published_version"] == 0
        assert status["learner"]["prompts_admitted"] == admitted and status["learner"]["step"] == 0
        assert status["reward"]["groups_scored"] == 3 and status["reward"]["groups_in_flight"] == 0
        assert [a["name"] for a in status["actors"]] == ["actor-0"]

        versions = client.get("/v1/versions").json()
        assert versions["published"] == 0 and versions["learner"] == 0 and versions["max_lag"] == 0
        assert versions["actors"][0]["actor_id"] == "actor-0" and versions["actors"][0]["groups_generated"] == 3

        rewards = client.get("/v1/rewards", params={"window": 2}).json()
        assert rewards["groups"] == 2 and rewards["window"] == 2
        g = actor.cfg.rollout.sampling.group_size
        math = rewards["kinds"]["math"]
        assert math["pass"] + math["fail"] + math["infra_error"] == 2 * g
        assert rewards["samples"] == math["samples"] == math["pass"] + math["fail"]
        assert 0.0 <= rewards["mean"] <= 1.0 and "math" in rewards["service"]["kinds"]

        # pause: the learner admits nothing, whatever room it has; resume: it admits again
        assert client.post("/v1/admission/pause", headers=AUTH).json() == {"paused": True}
        assert client.get("/v1/admission").json() == {"paused": True}
        learner.admission.consumed += 8  # room for 8 more prompts
        assert learner.admit() == 0
        assert client.post("/v1/admission/resume", headers=AUTH).json() == {"paused": False}
        assert learner.admit() == 8
        assert "relayrl run <code>gw</code>" in client.get("/").text


def test_every_endpoint_but_health_needs_the_token(world):
    with TestClient(create_app(world["settings"])) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = client.post("/v1/admission/pause", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            for path in ("/v1/status", "/v1/versions", "/v1/queues", "/v1/rewards", "/v1/admission", "/"):
                assert client.get(path, headers=headers).status_code == 401, path
        assert client.get("/v1/admission", headers=AUTH).json() == {"paused": False}
        assert client.get("/", params={"token": TOKEN}).status_code == 200  # a browser passes it in the URL
        assert client.get("/", params={"token": "wrong"}).status_code == 401
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_a_dead_service_is_unavailable_and_no_redis_is_503(redis_url):
    dead = GatewaySettings(run="gw", redis_url=redis_url, learner="127.0.0.1:1", reward="127.0.0.1:1",
                           actors=["127.0.0.1:1"], rpc_timeout_s=0.3)
    with TestClient(create_app(dead)) as client:
        status = client.get("/v1/status").json()
        assert status["learner"] is None and status["reward"] is None and status["published_version"] is None
        assert status["queues"]["prompts"] == {"stream": "relayrl:gw:prompts", "consumer_group": "actors", "length": 0,
                                               "waiting": 0, "leased": 0, "consumers": 0}
        assert client.get("/v1/versions").json()["actors"][0]["available"] is False
        assert client.get("/v1/rewards").json()["samples"] == 0
    no_redis = GatewaySettings(run="gw", redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(no_redis)) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/readyz", "/v1/status", "/v1/queues"):
            r = client.get(path)
            assert r.status_code == 503 and r.json()["status"].startswith("redis unavailable"), path


def test_an_unknown_query_parameter_is_422_not_silently_ignored():
    settings = GatewaySettings(run="gw", redis_url="redis://127.0.0.1:1/0", auth_token=TOKEN)
    with TestClient(create_app(settings), headers=AUTH) as client:
        r = client.get("/v1/rewards", params={"windw": 5})  # misspelt: the default window would answer
        assert r.status_code == 422
        assert r.json()["detail"] == [{"type": "extra_forbidden", "loc": ["query", "windw"], "input": "5",
                                       "msg": "unknown query parameter (this endpoint takes: window)"}]
        assert client.get("/healthz", params={"x": 1}).status_code == 422
        assert client.get("/v1/rewards", params={"window": 0}).status_code == 422  # a bad value, as before


def test_docs_need_no_internet_and_the_gateway_counts_its_own_requests():
    with TestClient(create_app(GatewaySettings(run="gw", redis_url="redis://127.0.0.1:1/0"))) as client:
        page = client.get("/docs").text
        assets = [a for a in page.replace("'", '"').split('"') if a.startswith("/static-offline-docs/")]
        assert "://" not in page and {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
        assert client.get("/openapi.json").json()["info"]["title"] == "relayrl gateway"
        metrics = client.get("/metrics", follow_redirects=False)
        assert metrics.status_code == 200
        assert 'relayrl_gateway_requests_total{method="GET",route="/docs",status="200"} 1.0' in metrics.text


def test_after_the_run_status_answers_from_the_run_directory(tmp_path):
    """A local run has finished: its private Redis is gone, its OUT holds the summary."""
    summary = {"steps": 3, "reward_first": 0.04, "reward_last": 0.1, "groups_trained": 48, "groups_dropped_stale": 0,
               "max_version_lag": 1, "max_staleness_trained": 1, "wall_s": 70.1}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "learner-status.json").write_text(json.dumps({"version": 3, "step": 3}))
    (tmp_path / "endpoints.json").write_text(json.dumps({"run": "gw", "redis": "redis://127.0.0.1:1/0", "services": {
        "learner": {"grpc": "127.0.0.1:1"}, "reward": {"grpc": "127.0.0.1:1"}}}))
    settings = GatewaySettings.from_endpoints(tmp_path / "endpoints.json", rpc_timeout_s=0.3)
    with TestClient(create_app(settings)) as client:
        status = client.get("/v1/status")
        assert status.status_code == 200
        body = status.json()
        assert body["finished"] is True and body["summary"] == summary and body["published_version"] == 3
        gone = client.get("/v1/queues")
        assert gone.status_code == 503 and gone.json()["status"].startswith("run finished: its summary is ")


@pytest.fixture
def gateway_url(world):
    """The gateway served by uvicorn on a loopback port, over a run with some scored groups."""
    import threading
    import time

    import uvicorn

    world["learner"].admit()
    world["actor"].step()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(world["settings"]), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# The schema the app publishes (it does not depend on the settings); calls go to the live server.
schema = schemathesis.openapi.from_dict(create_app(GatewaySettings()).openapi())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_gateway_keeps_to_its_openapi_schema(case, gateway_url):
    # unknown query parameters (which schemathesis adds in negative cases) are 422, as documented
    # for every endpoint, and the examples are the same on every run (derandomize)
    # every answer matches the schema: status codes, bodies, headers
    case.call_and_validate(base_url=gateway_url, headers=AUTH)
