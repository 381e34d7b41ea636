"""The Helm chart renders with Helm's own Go SDK (helm-python-sdk) for the default values and every
ci/*-values.yaml, lints clean (strict), every rendered manifest passes `kubernetes-validate
--strict` (offline: it ships the Kubernetes schemas), and the fields the deployment relies on are
there: autoscalers, GPUs, gVisor, the no-egress policy, the auth Secret, ServiceMonitors,
dashboards, the RayService, external Redis."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helm_python.chart import Chart, lint

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "relayrl"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CASES = {"default": {}, **{p.name.removesuffix("-values.yaml"): yaml.safe_load(p.read_text()) for p in CI_VALUES}}
# Custom resources: kubernetes-validate has no schema for them (it warns); their fields are asserted below.
CRDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "RayService"}


def render(values: dict) -> list[dict]:
    manifests = Chart.load(CHART).render(values, name="rl", namespace="train", is_install=True)
    docs = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def test_ci_values_cover_the_variants():
    assert {"keda", "external-redis", "cpu"} <= set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_chart_lints_clean_and_every_manifest_validates_strictly(case, tmp_path):
    values = CASES[case]
    Chart.load(CHART).validate_schema(values)
    report = lint(str(CHART), values, strict=True, namespace="train")
    assert report["errors"] == [] and report["messages"] == [], report
    docs = render(values)
    builtin = [d for d in docs if d["kind"] not in CRDS]
    assert len(builtin) >= 10
    files = []
    for i, doc in enumerate(builtin):
        path = tmp_path / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    validate = shutil.which("kubernetes-validate", path=str(Path(__import__("sys").executable).parent))
    result = subprocess.run([validate, "--strict", "--quiet", "-k", "1.30.0", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_rejects_bad_values():
    chart = Chart.load(CHART)
    for bad in ({"actors": {"replicas": 0}}, {"autoscaling": {"engine": "vpa"}}, {"run": {"name": "a b"}},
                {"learner": {"gpu": {"count": 0}}}, {"unknown": 1}):
        with pytest.raises(Exception):  # noqa: B017 -- the schema library's own error type
            chart.validate_schema(bad)


def test_default_render_every_service_with_labels_probes_gpus_and_hpa_fallback():
    docs = render({})
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"rl-relayrl-learner", "rl-relayrl-reward", "rl-relayrl-actor", "rl-relayrl-gateway"}
    assert "rl-relayrl-redis" in by_kind(docs, "StatefulSet")
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "relayrl" and labels["app.kubernetes.io/instance"] == "rl"
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and "helm.sh/chart" in labels
    for name in ("rl-relayrl-learner", "rl-relayrl-reward", "rl-relayrl-actor"):
        c = container(deployments[name])
        assert c["readinessProbe"]["grpc"]["port"] == c["ports"][0]["containerPort"]  # grpc.health.v1
        assert deployments[name]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # the default run trains on the CPU without gVisor (test_helm_sre.py); the keda case has both
    for name in ("rl-relayrl-learner", "rl-relayrl-actor", "rl-relayrl-reward"):
        assert "nvidia.com/gpu" not in container(deployments[name])["resources"].get("limits", {})
    assert "runtimeClassName" not in deployments["rl-relayrl-reward"]["spec"]["template"]["spec"]
    # no KEDA API offline: the HPA fallback, for both scaled components
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"rl-relayrl-reward", "rl-relayrl-actor"} and not by_kind(docs, "ScaledObject")
    assert hpas["rl-relayrl-actor"]["spec"]["scaleTargetRef"]["name"] == "rl-relayrl-actor"
    assert set(by_kind(docs, "PodDisruptionBudget")) == {"rl-relayrl-learner", "rl-relayrl-reward", "rl-relayrl-actor"}
    # the auth token Secret, used by every service
    secret = by_kind(docs, "Secret")["rl-relayrl-auth"]
    assert len(secret["data"]["token"]) > 40
    env = {e["name"]: e for e in container(deployments["rl-relayrl-gateway"])["env"]}
    assert env["RELAYRL_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "rl-relayrl-auth", "key": "token"}
    assert env["RELAYRL_GATEWAY_REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@rl-relayrl-redis:6379/0"
    redis_args = container(by_kind(docs, "StatefulSet")["rl-relayrl-redis"])["args"]
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"
    run_cfg = yaml.safe_load(by_kind(docs, "ConfigMap")["rl-relayrl-config"]["data"]["run.yaml"])
    assert run_cfg["run"] == "default" and run_cfg["queue"] == {"type": "redis"}


def test_reward_pods_have_no_egress_but_redis_and_dns():
    policy = by_kind(render({}), "NetworkPolicy")["rl-relayrl-reward-sandbox"]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "reward"
    assert "Egress" in spec["policyTypes"]
    redis_rule, dns_rule = spec["egress"]
    assert redis_rule["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "relayrl",
                                                                 "app.kubernetes.io/instance": "rl",
                                                                 "app.kubernetes.io/component": "redis"}}}]
    assert redis_rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert {p["port"] for p in dns_rule["ports"]} == {53}


def test_keda_servicemonitors_dashboards_and_rayservice():
    docs = render(CASES["keda"])
    scaled = by_kind(docs, "ScaledObject")
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    reward = scaled["rl-relayrl-reward"]["spec"]["triggers"][0]
    assert reward["type"] == "redis-streams"
    assert reward["metadata"] == {"address": "rl-relayrl-redis:6379", "stream": "relayrl:default:swe",
                                  "consumerGroup": "reward-workers", "lagCount": "10"}
    actor = scaled["rl-relayrl-actor"]["spec"]
    assert actor["triggers"][0]["metadata"]["stream"] == "relayrl:default:prompts"
    assert actor["triggers"][0]["metadata"]["consumerGroup"] == "actors"
    assert (actor["minReplicaCount"], actor["maxReplicaCount"]) == (1, 32)
    monitors = by_kind(docs, "ServiceMonitor")
    assert set(monitors) == {"rl-relayrl-learner", "rl-relayrl-reward", "rl-relayrl-actor"}
    relabel = monitors["rl-relayrl-actor"]["spec"]["endpoints"][0]["relabelings"][0]
    assert relabel == {"targetLabel": "component", "replacement": "actor"}
    assert monitors["rl-relayrl-actor"]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboards = {n: d for n, d in by_kind(docs, "ConfigMap").items() if n.endswith("-dashboard")}
    assert len(dashboards) == 5
    for cm in dashboards.values():
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        (name, text), = cm["data"].items()
        assert json.loads(text) == json.loads((ROOT / "deploy" / "grafana" / "dashboards" / name).read_text())
    ray = by_kind(docs, "RayService")["rl-relayrl-serve"]["spec"]
    assert yaml.safe_load(ray["serveConfigV2"])["applications"]["rollout"]["import_path"] == "relayrl_serve:app"
    worker = ray["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    deployments = by_kind(docs, "Deployment")
    for name in ("rl-relayrl-learner", "rl-relayrl-actor"):
        assert container(deployments[name])["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container(deployments[name])["image"].endswith("-cuda")
    assert "nvidia.com/gpu" not in container(deployments["rl-relayrl-reward"])["resources"].get("limits", {})
    assert deployments["rl-relayrl-reward"]["spec"]["template"]["spec"]["runtimeClassName"] == "gvisor"
    learner = deployments["rl-relayrl-learner"]["spec"]["template"]["spec"]
    assert learner["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert learner["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_external_redis_and_existing_secret():
    docs = render(CASES["external-redis"])
    assert "rl-relayrl-redis" not in by_kind(docs, "StatefulSet") and not by_kind(docs, "Secret")
    learner = container(by_kind(docs, "Deployment")["rl-relayrl-learner"])
    env = {e["name"]: e for e in learner["env"]}
    assert env["RELAYRL_REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@redis.example.internal:6380/2"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "managed-redis", "key": "password"}
    assert env["RELAYRL_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "relayrl-auth"
    scaled = by_kind(docs, "ScaledObject")["rl-relayrl-reward"]["spec"]["triggers"][0]
    assert scaled["metadata"]["address"] == "redis.example.internal:6380" and scaled["metadata"]["databaseIndex"] == "2"
    assert scaled["authenticationRef"] == {"name": "rl-relayrl-redis-auth"}
    egress = by_kind(docs, "NetworkPolicy")["rl-relayrl-reward-sandbox"]["spec"]["egress"][0]
    assert egress == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 6380, "protocol": "TCP"}]}
    volumes = {v["name"]: v for v in by_kind(docs, "Deployment")["rl-relayrl-actor"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "relayrl-models"


def test_cpu_values_drop_gpus_and_autoscalers():
    docs = render(CASES["cpu"])
    deployments = by_kind(docs, "Deployment")
    for name in ("rl-relayrl-learner", "rl-relayrl-actor"):
        assert "nvidia.com/gpu" not in container(deployments[name])["resources"]["limits"]
        assert ":0.1.0" in container(deployments[name])["image"] and "cuda" not in container(deployments[name])["image"]
    assert deployments["rl-relayrl-actor"]["spec"]["replicas"] == 2
    assert "runtimeClassName" not in deployments["rl-relayrl-reward"]["spec"]["template"]["spec"]
    assert not by_kind(docs, "HorizontalPodAutoscaler") and not by_kind(docs, "ScaledObject")
    assert deployments["rl-relayrl-actor"]["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
