"""The Helm chart's pods run with `podman kube play`: Redis, the reward service, the learner, two
actors and the gateway start, find each other and train a short run; then, inside the reward
container, under the security context the chart gives it (the shipped seccomp profile, all
capabilities dropped, no privilege escalation, a read-only root, uid 10001, the container's
masked /proc), code is scored and attacks from tests/sandbox are contained.

What podman 4.3's kube play does not do, and what the test does instead (docs/deploying.md):
init containers are removed while still running, so the model comes from a volume made first;
StatefulSets are skipped, so Redis's (one replica, no volume claim here) runs as a Deployment;
`$(VAR)` in args and env values is not expanded, so the test expands it as Kubernetes does;
Services are ignored, so clients are pointed at pod names (the headless reward Service becomes
the one reward pod); Secrets fail to load, so their values are written into the env; the
seccompProfile field is ignored, so the same profile is given as the annotation kube play reads;
probes, PDBs, autoscalers and NetworkPolicies do not run; container ports are dropped (kube play
publishes each on the host, where replicas would clash).
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from pathlib import Path

import pytest
import yaml
from helm_python.chart import Chart
from podman import IMAGE, PROFILE, ROOT, podman, python_in, wait_for

pytestmark = pytest.mark.containers
sys.path.insert(0, str(ROOT / "tests" / "sandbox"))
from test_sandbox_attacks import ATTACKS, TAMPERING, stdio  # noqa: E402

STEPS, BATCH = 12, 8
PLAYED = {"ConfigMap", "Deployment", "StatefulSet", "PersistentVolumeClaim"}


def values(release: str) -> dict:
    small = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "3Gi"}}
    return {
        "image": {"pullPolicy": "Never"},
        "model": {"initTiny": False, "volume": {"persistentVolumeClaim": {"claimName": f"{release}-models"}}},
        "run": {"name": "kube", "config": {
            "task": {"name": "most_frequent_digit", "num_digits": 5},
            "queue": {"lease_idle_s": 3},
            "rollout": {"prompts_per_batch": 4, "sampling": {"group_size": 8, "max_new_tokens": 4, "top_k": 0}},
            "model": {"tiny": {"max_position_embeddings": 64}},
            "reward": {"workers": 1},
            "learner": {"batch_groups": BATCH, "max_staleness": 1, "steps": STEPS, "loss": {"kl_beta": 0.1},
                        "checkpoint": {"every": 4}, "weights": {"wire_dtype": "float32"}}}},
        "learner": {"resources": small},
        "actors": {"replicas": 2, "autoscaling": {"enabled": False}, "resources": small},
        "reward": {"replicas": 1, "autoscaling": {"enabled": False}, "resources": small,
                   "sandbox": {"seccompProfile": {"type": "Localhost", "localhostProfile": PROFILE.name}}},
        "redis": {"persistence": {"enabled": False}},
        "autoscaling": {"engine": "hpa"}, "dashboards": {"enabled": False}, "serviceMonitor": {"enabled": False},
    }


def for_kube_play(docs: list[dict], release: str) -> tuple[list[dict], dict]:
    """The manifests kube play can run, adapted as the module docstring says; and the Secret's data."""
    full = f"{release}-relayrl"
    secret = {k: base64.b64decode(v).decode() for d in docs if d["kind"] == "Secret" for k, v in d["data"].items()}
    pods = {f"{full}-{c}": f"{full}-{c}-pod-0" for c in ("learner", "reward", "redis")}
    pods[f"{full}-reward-headless"] = pods[f"{full}-reward"]
    text = yaml.safe_dump_all([d for d in docs if d["kind"] in PLAYED])
    for service, pod in sorted(pods.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(f"{service}:", f"{pod}:")
    played = list(yaml.safe_load_all(text))
    for doc in played:
        if doc["kind"] == "StatefulSet":  # kube play 4.3 skips StatefulSets: Redis's runs as a Deployment
            doc["kind"] = "Deployment"
            doc["spec"].pop("serviceName")
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe", "ports"):
                c.pop(probe, None)
            defined: dict[str, str] = {}
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    e.pop("valueFrom")
                    e["value"] = secret[ref["key"]]
                if "value" in e:  # Kubernetes expands $(VAR) of earlier variables; kube play does not
                    e["value"] = expand(e["value"], defined)
                    defined[e["name"]] = e["value"]
            if "args" in c:
                c["args"] = [expand(a, defined) for a in c["args"]]
            profile = c.get("securityContext", {}).get("seccompProfile", {})
            if profile.get("type") == "Localhost":
                pod["metadata"].setdefault("annotations", {})[
                    f"container.seccomp.security.alpha.kubernetes.io/{c['name']}"] = f"localhost/{profile['localhostProfile']}"
    return played, secret


def expand(text: str, defined: dict[str, str]) -> str:
    for name, value in defined.items():
        text = text.replace(f"$({name})", value)
    return text


@pytest.fixture
def played(tmp_path):
    release = f"k{secrets.token_hex(2)}"
    manifests = Chart.load(ROOT / "helm" / "relayrl").render(values(release), name=release, namespace="train",
                                                             is_install=True)
    docs = [d for path, text in manifests.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d]
    kube, secret = for_kube_play(docs, release)
    path = tmp_path / "kube.yaml"
    path.write_text(yaml.safe_dump_all(kube))
    config = tmp_path / "run.yaml"
    config.write_text(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["run.yaml"])
    config.chmod(0o644)
    network = f"{release}-net"
    podman("network", "create", network)
    try:
        # the model volume (model.initTiny false): podman 4.3's kube play removes an init container
        # while it still runs, so the tiny model is made beforehand, as a model volume would hold it
        podman("volume", "create", f"{release}-models")
        podman("run", "--rm", "--user", "0", "-v", f"{release}-models:/models", "-v", f"{config}:/run.yaml:ro",
               "--entrypoint", "sh", IMAGE, "-c",
               "relayrl model init-tiny /models/policy --config /run.yaml && chmod -R a+rX /models")
        podman("kube", "play", "--network", network, "--seccomp-profile-root", str(PROFILE.parent), str(path))
        yield release, network, secret, docs
    finally:
        for pod in json.loads(podman("pod", "ps", "--format", "json").stdout):
            if pod["Name"].startswith(release):
                print(podman("pod", "logs", pod["Name"], check=False).stdout[-6000:])
        podman("kube", "down", str(path), check=False)
        # kube play 4.3 makes each emptyDir a named volume of the same name ("tmp", "data")
        empty_dirs = {v["name"] for d in kube if d["kind"] == "Deployment"
                      for v in d["spec"]["template"]["spec"].get("volumes", []) if "emptyDir" in v}
        for volume in podman("volume", "ls", "-q").stdout.split():
            if volume.startswith(release) or volume in empty_dirs:
                podman("volume", "rm", "-f", volume, check=False)
        podman("network", "rm", "-f", network, check=False)


def steps_trained(volume: str) -> int:
    mount = Path(json.loads(podman("volume", "inspect", volume).stdout)[0]["Mountpoint"])
    metrics = mount / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def test_chart_pods_start_find_each_other_train_and_contain_attacks(played):
    release, network, secret, docs = played
    full = f"{release}-relayrl"
    pods = {p["Name"] for p in json.loads(podman("pod", "ps", "--format", "json").stdout) if p["Name"].startswith(full)}
    assert pods == {f"{full}-{c}-pod-0" for c in ("learner", "reward", "redis", "gateway", "actor")} | {
        f"{full}-actor-pod-1"}, pods
    volume = f"{full}-learner-checkpoints"
    wait_for(f"{STEPS} learner steps", lambda: steps_trained(volume) >= STEPS, 600, every_s=3)
    out = podman("run", "--rm", "--network", network, "-v", f"{volume}:/checkpoints", "--entrypoint", "python", IMAGE,
                 "-c", "import json; from pathlib import Path; from relayrl.ledger import account; "
                       f"print(json.dumps(account('redis://:{secret['redis-password']}@{full}-redis-pod-0:6379/0', "
                       "'kube', Path('/checkpoints')).summary('kube')))").stdout
    ledger = json.loads(out.strip().splitlines()[-1])
    print("kube play run:", json.dumps(ledger))
    assert ledger["lost"] == 0 and ledger["duplicated"] == 0 and ledger["groups_trained"] >= STEPS * BATCH, ledger

    reward = f"{full}-reward-pod-0-reward"
    state = json.loads(podman("inspect", reward).stdout)[0]
    assert state["HostConfig"]["ReadonlyRootfs"] is True and state["Config"]["User"].startswith("10001")
    redis_ip = json.loads(podman("inspect", f"{full}-redis-pod-0-redis").stdout)[0]["NetworkSettings"]["Networks"][
        network]["IPAddress"]
    # the cases go in on stdin: in arguments, the attacks would find the pod's secrets in this
    # command's own /proc/<pid>/cmdline
    report = python_in(reward, SCORE, stdin=json.dumps(cases(secret, redis_ip)), timeout=300)
    print("scored in the reward pod:", json.dumps(report))
    assert report["profile_in_force"] == "Function not implemented"  # keyctl: refused only by the shipped profile
    assert report["health"]["code"] == 1  # SERVING
    assert report["scores"].pop("honest") == "pass"
    assert len(report["scores"]) == 11 and set(report["scores"].values()) == {"fail"}, report["scores"]
    assert report["honest_after"] == "pass"  # the pod kept serving


SCORE = """
import ctypes, json, os, sys
import grpc
from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g
from relayrl.reward.client import GrpcRewardClient
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall(250, 0, 0, 0, 0, 0)  # keyctl: the runtime's default allows it, the shipped profile does not
profile = os.strerror(ctypes.get_errno())
health = g.HealthStub(grpc.insecure_channel("127.0.0.1:50051"))
status = {k: health.Check(h.HealthCheckRequest(service="relayrl.v1.RewardService/" + k), timeout=5).status
          for k in ("code", "math")}
client = GrpcRewardClient("127.0.0.1:50051", timeout_s=120)
scores = {name: client.score("code", "```python\\n" + program + "\\n```", spec).outcome
          for name, (program, spec) in json.load(sys.stdin).items()}
double = json.dumps({"kind": "stdio", "cases": [{"stdin": "21", "stdout": "42"}]})
honest = client.score("code", "print(int(input()) * 2)", double)
print(json.dumps({"profile_in_force": profile, "health": status, "scores": scores, "honest_after": honest.outcome}))
"""


def cases(secret: dict, redis_ip: str) -> dict:
    """The honest program, attacks from tests/sandbox, and the container's own: read the pod's
    secrets (token, Redis password) from every process /proc lists, reach Redis, nest a user
    namespace. Each attack would pass its test if it worked."""
    import textwrap

    steal = textwrap.dedent("""
        import os, re
        found = set()
        for pid in os.listdir('/proc'):
            for name in ('environ', 'cmdline'):
                try:
                    data = open('/proc/%s/%s' % (pid, name), 'rb').read().decode(errors='replace')
                except OSError:
                    continue
                found |= set(re.findall(r'(?:RELAYRL_AUTH_TOKEN|REDIS_PASSWORD|REDISCLI_AUTH)=([A-Za-z0-9_-]+)', data))
                found |= set(re.findall(r'redis://:([^@]+)@', data))
        print('\\n'.join(sorted(found)) or 'nothing')
        """)
    redis = textwrap.dedent("""
        import socket
        try:
            socket.create_connection((REDIS, 6379), timeout=2).close(); print('connected')
        except OSError:
            print('isolated')
        """).replace("REDIS", repr(redis_ip))
    nest = "import ctypes\nprint(ctypes.CDLL(None).unshare(0x10000000))\n"
    chosen = {name: ATTACKS[name] for name in ("fork_bomb", "memory_bomb_touched", "secret_environ", "kill_the_parent",
                                               "daemon_setsid_double_fork", "disk_fill_tmp")}
    chosen.update({f"tamper_{n}": (TAMPERING[n], None) for n in ("exit_zero_before_asserts", "stack_walk_appends_passed")})
    from test_sandbox_attacks import ASSERT_SPEC

    out = {"honest": ("print(int(input()) * 2)", stdio("84", stdin="42"))}
    for name, (program, spec) in chosen.items():
        out[name] = (textwrap.dedent(program), spec or ASSERT_SPEC)
    out["steal_pod_secrets"] = (steal, stdio("\n".join(sorted(secret.values()))))
    out["reach_redis"] = (redis, stdio("connected"))
    out["nested_user_namespace"] = (nest, stdio("0"))
    return out
