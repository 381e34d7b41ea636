"""docker-compose.yml run for real with podman-compose: Redis, the reward service, the learner,
two CPU actors and the gateway train a short run to its end, while the learner's and then the
reward service's main process are SIGKILLed mid-run (the runtime restarts both: the learner
resumes from its checkpoint). The ledger (relayrl.ledger) then accounts for every prompt: none
lost, none trained twice; the run's summary is the launcher's (relayrl.local.summarize).

Deviations from a Docker host, all podman-compose's: it does not wait for health conditions, and
it makes podman `--requires` of depends_on, with which podman does not restart a container whose
requirement has exited (model-init): the containers are created without it and started in
depends_on's order by the test. A short run config replaces deploy/compose.run.yaml
(RELAYRL_RUN_CONFIG).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
from pathlib import Path

import pytest
from podman import COMPOSE, IMAGE, ROOT, crash, env, inspect, podman, python_in, wait_for

pytestmark = pytest.mark.containers

STEPS, BATCH = 36, 16
RUN_CONFIG = f"""
run: compose
task: {{name: most_frequent_digit, num_digits: 5}}
queue: {{type: redis, lease_idle_s: 3}}
rollout: {{num_actors: 2, prompts_per_batch: 8, sampling: {{group_size: 8, max_new_tokens: 4, top_k: 0, top_p: 1.0}}}}
model: {{tiny: {{max_position_embeddings: 64}}}}
reward: {{workers: 1, sandbox: {{proc: bind}}}}
learner: {{batch_groups: {BATCH}, max_staleness: 1, steps: {STEPS}, loss: {{kl_beta: 0.1}}, checkpoint: {{every: 4}},
          weights: {{wire_dtype: float32}}}}
"""
LEDGER = """
import json
from pathlib import Path
from relayrl.ledger import account
from relayrl.local import summarize
ledger = account("redis://redis:6379/0", "compose", Path("/checkpoints"))
records = [json.loads(l) for l in Path("/checkpoints/metrics.jsonl").read_text().splitlines() if l.strip()]
status = json.loads(Path("/checkpoints/learner-status.json").read_text())
print(json.dumps({"ledger": ledger.summary("compose"), "summary": summarize(records, 0.0, status)}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stack(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    config.chmod(0o644)
    project = f"rlc{secrets.token_hex(3)}"
    token = secrets.token_urlsafe(16)
    extra = {"RELAYRL_RUN_CONFIG": str(config), "RELAYRL_AUTH_TOKEN": token, "RELAYRL_IMAGE": IMAGE,
             "RELAYRL_GATEWAY_PORT": str(free_port())}

    def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(COMPOSE), "-p", project, "--profile", "cpu", *args], cwd=ROOT, env=env(**extra),
                              capture_output=True, text=True, timeout=timeout)

    yield project, compose, token
    logs = compose("logs", timeout=120)
    print(logs.stdout[-20000:])
    compose("down", "-v", "-t", "1", timeout=300)


def learner_steps(project: str) -> int:
    """Steps in the learner's log (a resume truncates it to its checkpoint), read from its volume."""
    mount = Path(json.loads(podman("volume", "inspect", f"{project}_checkpoints").stdout)[0]["Mountpoint"])
    metrics = mount / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def test_compose_stack_trains_to_the_end_through_learner_and_reward_crashes(stack):
    project, compose, token = stack
    # --no-deps: podman-compose turns depends_on into podman's --requires, and podman does not restart
    # a container one of whose requirements has exited (model-init, a one-shot); the start order
    # depends_on gives on a Docker host is kept below
    up = compose("up", "--no-start", "--no-deps")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    names = {c["Names"][0] for c in json.loads(podman("ps", "-a", "--format", "json",
                                                        "--filter", f"label=io.podman.compose.project={project}").stdout)}
    assert {f"{project}_{s}_1" for s in ("redis", "reward", "learner", "gateway", "actor-cpu")} <= names, names
    assert f"{project}_actor-cpu_2" in names  # two actors (deploy.replicas)
    learner, reward = f"{project}_learner_1", f"{project}_reward_1"
    # in the order depends_on's health conditions give on a Docker host (podman-compose skips them)
    podman("start", f"{project}_redis_1", f"{project}_model-init_1")
    wait_for("Redis", lambda: podman("exec", f"{project}_redis_1", "redis-cli", "ping", check=False).stdout.strip()
             == "PONG", 60)
    wait_for("the tiny model", lambda: inspect(f"{project}_model-init_1")["State"]["Status"] == "exited", 120)
    assert inspect(f"{project}_model-init_1")["State"]["ExitCode"] == 0
    podman("start", reward, learner)
    for name, port in ((reward, 50051), (learner, 50052)):
        wait_for(f"{name} serving", lambda n=name, p=port: podman(
            "exec", n, "python", "-c", f"from relayrl.rpc import wait_ready; wait_ready('127.0.0.1:{p}', 4)",
            check=False).returncode == 0, 180, every_s=2)
    podman("start", f"{project}_actor-cpu_1", f"{project}_actor-cpu_2", f"{project}_gateway_1")

    wait_for("the learner's 8th step", lambda: learner_steps(project) >= 8, 420)
    restarts = inspect(learner)["RestartCount"]
    crash(learner)
    wait_for("the learner restarted", lambda: inspect(learner)["RestartCount"] > restarts
             and inspect(learner)["State"]["Running"], 120)
    wait_for("the learner's 18th step, after its restart", lambda: learner_steps(project) >= 18, 420)
    restarts = inspect(reward)["RestartCount"]
    crash(reward)
    wait_for("the reward service restarted", lambda: inspect(reward)["RestartCount"] > restarts, 120)

    def finished():
        state = inspect(learner)["State"]
        return not state["Running"] and state["Status"] == "exited" and state["ExitCode"] == 0
    wait_for("the learner to finish every step", finished, 600, every_s=2)

    status = python_in(f"{project}_gateway_1", f"""
import json, urllib.request as u
req = u.Request("http://127.0.0.1:8080/v1/status", headers={{"Authorization": "Bearer {token}"}})
print(json.dumps(json.load(u.urlopen(req, timeout=10))))
""")
    assert status, status
    out = podman("run", "--rm", "--network", f"{project}_default", "-v", f"{project}_checkpoints:/checkpoints",
                 "--entrypoint", "python", IMAGE, "-c", LEDGER).stdout
    report = json.loads(out.strip().splitlines()[-1])
    print("compose run:", json.dumps(report))
    ledger, summary = report["ledger"], report["summary"]
    assert ledger["lost"] == 0 and ledger["duplicated"] == 0, ledger
    assert ledger["groups_trained"] == STEPS * BATCH == summary["groups_trained"]
    assert summary["steps"] == STEPS
