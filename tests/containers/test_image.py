"""The CPU image (deploy/Dockerfile.cpu, built by scripts/containers.sh) and the code sandbox in
it, under the seccomp profile the deployments ship (deploy/seccomp/relayrl-sandbox.json).

- the image runs every service's entrypoint as uid 10001 with the CPU build of torch;
- in a container with the profile and the runtime's masked /proc, the sandbox works with
  `proc: bind` and reports, without running anything, why it cannot with `proc: fresh`;
- under a Docker-like profile (the same without the namespace calls) it reports that bubblewrap
  cannot make its namespaces: the service's health says so (code NOT_SERVING, a reason), its
  metric is 1, its log says why, and no code sample is taken.
"""

from __future__ import annotations

import json

import pytest
from podman import IMAGE, PROFILE, inspect, podman, wait_for

pytestmark = pytest.mark.containers

HEALTH = """
import json, logging
from prometheus_client import REGISTRY
from relayrl.config import SandboxConfig
from relayrl.reward.sandbox import Sandbox
logging.disable(logging.CRITICAL)
s = Sandbox(SandboxConfig(proc=%r))
r = s.run(["/usr/bin/python3", "-c", "import os; print(len(os.listdir('/proc')))"]) if s.mode == "bwrap" else None
print(json.dumps({**s.health(), "ran": r and (r.exit_code, r.stdout.decode().strip()),
                  "metric": {l: REGISTRY.get_sample_value("relayrl_sandbox_isolation_unavailable", {"layer": l})
                             for l in ("namespaces", "cgroups")}}))
"""


def docker_like(tmp_path) -> str:
    """The shipped profile without what bubblewrap needs: what a Docker-style default allows."""
    profile = json.loads(PROFILE.read_text())
    allow = profile["syscalls"][1]
    allow["names"] = [n for n in allow["names"] if n not in {"unshare", "mount", "umount", "umount2", "pivot_root",
                                                              "clone", "clone3"}]
    profile["syscalls"].append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                                "args": [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]})
    path = tmp_path / "docker-like.json"
    path.write_text(json.dumps(profile))
    return str(path)


def sandbox_health(profile: str, proc: str) -> dict:
    out = podman("run", "--rm", "--security-opt", f"seccomp={profile}", "--read-only", "--cap-drop", "ALL",
                 "--security-opt", "no-new-privileges", "--tmpfs", "/tmp", "--entrypoint", "python", IMAGE,
                 "-c", HEALTH % proc).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_image_runs_as_10001_with_torch_for_the_cpu():
    out = podman("run", "--rm", "--entrypoint", "python", IMAGE, "-c",
                 "import json, os, torch, shutil; print(json.dumps([os.getuid(), torch.__version__, torch.version.cuda,"
                 " shutil.which('bwrap'), os.path.realpath('/usr/bin/python3')]))").stdout
    assert json.loads(out) == [10001, "2.13.0+cpu", None, "/usr/bin/bwrap", "/usr/local/bin/python3.11"]
    assert "serve" in podman("run", "--rm", IMAGE, "--help").stdout


def test_the_shipped_profile_lets_the_sandbox_run_with_the_containers_proc():
    health = sandbox_health(str(PROFILE), "bind")
    assert (health["mode"], health["reason"], health["seccomp"]) == ("bwrap", None, True), health
    exit_code, listed = health["ran"]
    assert exit_code == 0 and int(listed) > 1  # the container's /proc, read-only
    # an unprivileged container's cgroupfs is read-only: jobs run without cgroups, and it says so
    assert health["cgroups"] == "none" and "not writable" in health["cgroups_reason"]
    assert health["metric"] == {"namespaces": 0.0, "cgroups": 1.0}


def test_a_fresh_proc_under_a_masked_proc_is_reported_with_the_fix():
    health = sandbox_health(str(PROFILE), "fresh")
    assert health["mode"] == "unavailable" and health["ran"] is None
    assert "proc" in health["reason"] and "set reward.sandbox.proc: bind" in health["reason"], health
    assert health["metric"]["namespaces"] == 1.0


def test_a_docker_like_profile_is_reported_by_health_metric_and_log(tmp_path):
    health = sandbox_health(docker_like(tmp_path), "bind")
    assert health["mode"] == "unavailable" and "Creating new namespace failed" in health["reason"], health
    assert "seccomp or AppArmor profile" in health["reason"]
    assert health["metric"]["namespaces"] == 1.0
    # the service: code refused with the reason, NOT_SERVING for its kind, math still served
    name = f"relayrl-test-docker-like-{tmp_path.name}"[:60]
    config = tmp_path / "run.yaml"
    config.write_text("run: t\nqueue: {type: memory}\nreward: {sandbox: {proc: bind}}\n")
    config.chmod(0o644)
    podman("run", "-d", "--name", name, "--security-opt", f"seccomp={docker_like(tmp_path)}", "-v",
           f"{config}:/etc/relayrl/run.yaml:ro", IMAGE, "serve", "reward", "--config", "/etc/relayrl/run.yaml",
           "--host", "127.0.0.1", "--port", "50051")
    try:
        probe = ("import grpc, json; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g;"
                 "s = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051'));"
                 "print(json.dumps({k: s.Check(h.HealthCheckRequest(service='relayrl.v1.RewardService/' + k),"
                 " timeout=5).status for k in ('code', 'math')}))")

        def served():
            result = podman("exec", name, "python", "-c", probe, check=False)
            return result.returncode == 0 and json.loads(result.stdout)

        status = wait_for("the reward service's health", served, 60)
        assert status == {"code": 2, "math": 1}  # NOT_SERVING, SERVING
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        line = next(ln for ln in logs.splitlines() if "sandbox isolation unavailable" in ln)
        assert "bubblewrap cannot create the sandbox here" in line and "refuses untrusted code" in line
        assert inspect(name)["State"]["Running"]
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
