"""The chart as an SRE reads it (issue 15, item 4): one test per finding, each rendering the
chart with its own values (helm-python-sdk, Helm's Go SDK) and asserting the fixed field. The
manifests also pass `kubernetes-validate --strict` (test_helm_chart.py); whether a cluster honours
them (NetworkPolicies, probes, PDBs) is not run here (docs/deploying.md)."""

from __future__ import annotations

import pytest
import yaml
from helm_python.chart import Chart
from test_helm_chart import CASES, CHART, by_kind, container, render

LABELS = {"app.kubernetes.io/name": "relayrl", "app.kubernetes.io/instance": "rl"}


def selector(component: str) -> dict:
    return {"podSelector": {"matchLabels": {**LABELS, "app.kubernetes.io/component": component}}}


def notes(values: dict) -> str:
    manifests = Chart.load(CHART).render(values, name="rl", namespace="train", is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def arg(c: dict, flag: str) -> str:
    return c["args"][c["args"].index(flag) + 1]


def test_redis_fsyncs_every_write_refuses_writes_past_maxmemory_and_asks_for_the_run_password():
    docs = render({})
    redis = container(by_kind(docs, "StatefulSet")["rl-relayrl-redis"])
    assert arg(redis, "--appendfsync") == "always"  # as the launcher's private Redis
    assert arg(redis, "--maxmemory") == "1536mb" and arg(redis, "--maxmemory-policy") == "noeviction"
    assert arg(redis, "--requirepass") == "$(REDIS_PASSWORD)"
    ref = {"secretKeyRef": {"name": "rl-relayrl-auth", "key": "redis-password"}}
    env = {e["name"]: e["valueFrom"] for e in redis["env"]}
    assert env == {"REDIS_PASSWORD": ref, "REDISCLI_AUTH": ref}  # the probe's redis-cli authenticates
    assert len(by_kind(docs, "Secret")["rl-relayrl-auth"]["data"]["redis-password"]) > 40
    for name, deployment in by_kind(docs, "Deployment").items():
        c = container(deployment)
        env = {e["name"]: e.get("valueFrom") for e in c["env"]}
        assert env["REDIS_PASSWORD"] == ref, name
        urls = {e["name"]: e.get("value") for e in c["env"] if e["name"].endswith("REDIS_URL")}
        assert set(urls.values()) == {"redis://:$(REDIS_PASSWORD)@rl-relayrl-redis:6379/0"}, name
        order = [e["name"] for e in c["env"]]
        assert all(order.index("REDIS_PASSWORD") < order.index(u) for u in urls), name  # $(...) sees earlier vars
        assert "--redis" not in c["args"], name  # never on a command line: a sandbox job can read /proc/1/cmdline
    keda = render(CASES["keda"])
    trigger = by_kind(keda, "ScaledObject")["rl-relayrl-actor"]["spec"]["triggers"][0]
    assert trigger["authenticationRef"] == {"name": "rl-relayrl-redis-auth"}
    assert by_kind(keda, "TriggerAuthentication")["rl-relayrl-redis-auth"]["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "rl-relayrl-auth", "key": "redis-password"}]
    with pytest.raises(Exception):  # noqa: B017 -- the schema library's own error type
        Chart.load(CHART).validate_schema({"redis": {"appendfsync": "sometimes"}})


def test_every_component_has_a_network_policy_that_admits_only_its_callers():
    docs = render({})
    policies = by_kind(docs, "NetworkPolicy")
    assert set(policies) == {"rl-relayrl-learner", "rl-relayrl-reward-sandbox", "rl-relayrl-actor",
                             "rl-relayrl-gateway", "rl-relayrl-redis"}
    redis = policies["rl-relayrl-redis"]["spec"]
    assert redis["ingress"] == [{"from": [selector(c) for c in ("learner", "reward", "actor", "gateway")],
                                 "ports": [{"port": 6379, "protocol": "TCP"}]}]
    assert redis["egress"] == [] and redis["policyTypes"] == ["Ingress", "Egress"]
    learner = policies["rl-relayrl-learner"]["spec"]
    assert learner["ingress"][0] == {"from": [selector("actor"), selector("gateway")],
                                     "ports": [{"port": 50052, "protocol": "TCP"}]}
    assert learner["ingress"][1] == {"ports": [{"port": 9100, "protocol": "TCP"}]}  # scrapes
    actor = policies["rl-relayrl-actor"]["spec"]
    assert actor["ingress"][0]["from"] == [selector("gateway")]
    egress = [(rule["to"], [p["port"] for p in rule["ports"]]) for rule in actor["egress"]]
    assert egress[:3] == [([selector("redis")], [6379]), ([selector("learner")], [50052]),
                          ([selector("reward")], [50051])]
    reward = policies["rl-relayrl-reward-sandbox"]["spec"]
    assert [r["to"] for r in reward["egress"]][0] == [selector("redis")] and len(reward["egress"]) == 2  # + DNS
    gateway = policies["rl-relayrl-gateway"]["spec"]
    assert gateway["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    assert [r["to"] for r in gateway["egress"]][1:4] == [[selector(c)] for c in ("learner", "reward", "actor")]
    keda = by_kind(render(CASES["keda"]), "NetworkPolicy")["rl-relayrl-redis"]["spec"]["ingress"][0]["from"]
    assert keda[-1] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    assert selector("ray-serve") in keda  # the RayService's pods (labelled) lease prompts too
    assert not by_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_actors_round_robin_over_a_headless_reward_service():
    docs = render({})
    headless = by_kind(docs, "Service")["rl-relayrl-reward-headless"]["spec"]
    assert headless["clusterIP"] == "None" and headless["ports"][0]["port"] == 50051
    assert headless["selector"]["app.kubernetes.io/component"] == "reward"
    actor = container(by_kind(docs, "Deployment")["rl-relayrl-actor"])
    assert arg(actor, "--reward") == "dns:///rl-relayrl-reward-headless:50051"  # relayrl.rpc: round_robin


def test_the_learner_pdb_lets_a_node_drain_and_the_learner_resumes():
    docs = render({})
    assert by_kind(docs, "PodDisruptionBudget")["rl-relayrl-learner"]["spec"]["maxUnavailable"] == 1
    args = container(by_kind(docs, "Deployment")["rl-relayrl-learner"])["args"]
    assert "--fresh" not in args and "--resume" not in args  # restart is resume, the learner's default
    with pytest.raises(Exception):  # noqa: B017 -- the schema library's own error type
        Chart.load(CHART).validate_schema({"learner": {"pdb": {"maxUnavailable": 0}}})


def test_defaults_request_no_gpu_and_no_runtime_class():
    deployments = by_kind(render({}), "Deployment")
    for name, deployment in deployments.items():
        assert "nvidia.com/gpu" not in container(deployment)["resources"].get("limits", {}), name
        assert "runtimeClassName" not in deployment["spec"]["template"]["spec"], name
        assert "cuda" not in container(deployment)["image"], name


def test_tolerations_are_a_list():
    toleration = {"key": "dedicated", "operator": "Equal", "value": "rl", "effect": "NoSchedule"}
    docs = render({"reward": {"tolerations": [toleration]}})
    assert by_kind(docs, "Deployment")["rl-relayrl-reward"]["spec"]["template"]["spec"]["tolerations"] == [toleration]
    with pytest.raises(Exception):  # noqa: B017 -- the schema library's own error type
        Chart.load(CHART).validate_schema({"reward": {"tolerations": {"dedicated": toleration}}})


def test_notes_give_the_gateway_url_with_the_token_and_how_to_push_the_image():
    text = notes({})
    token = text.index("TOKEN=$(kubectl -n train get secret rl-relayrl-auth -o jsonpath='{.data.token}' | base64 -d)")
    assert text.index('open "http://127.0.0.1:8080/?token=$TOKEN"') > token
    assert "docker build -f deploy/Dockerfile.cpu -t REGISTRY/relayrl:0.1.0 ." in text
    assert "docker push REGISTRY/relayrl:0.1.0" in text
    assert "docker push" not in notes({"image": {"repository": "registry.example/ml/relayrl"}})
    images = {container(d)["image"] for d in by_kind(render({}), "Deployment").values()}
    assert images == {"relayrl:0.1.0"}  # a local name, not a registry nobody pushed to


def test_reward_pods_carry_the_sandbox_security_context():
    docs = render({})
    reward = by_kind(docs, "Deployment")["rl-relayrl-reward"]["spec"]["template"]["spec"]
    sc = reward["containers"][0]["securityContext"]
    assert sc["seccompProfile"] == {"type": "Unconfined"} and "procMount" not in sc and "hostUsers" not in reward
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and reward["securityContext"]["runAsNonRoot"] is True
    run = yaml.safe_load(by_kind(docs, "ConfigMap")["rl-relayrl-config"]["data"]["run.yaml"])
    assert run["reward"]["sandbox"] == {"proc": "bind"}  # the masked /proc of an ordinary pod
    for name, d in by_kind(docs, "Deployment").items():  # the others keep the runtime's default
        if name != "rl-relayrl-reward":
            assert "seccompProfile" not in container(d)["securityContext"], name
    hardened = render(CASES["keda"])
    reward = by_kind(hardened, "Deployment")["rl-relayrl-reward"]["spec"]["template"]["spec"]
    sc = reward["containers"][0]["securityContext"]
    assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "relayrl-sandbox.json"}
    assert sc["procMount"] == "Unmasked" and reward["hostUsers"] is False
    assert sc["appArmorProfile"] == {"type": "Unconfined"}
    run = yaml.safe_load(by_kind(hardened, "ConfigMap")["rl-relayrl-config"]["data"]["run.yaml"])
    assert run["reward"]["sandbox"]["proc"] == "fresh"
