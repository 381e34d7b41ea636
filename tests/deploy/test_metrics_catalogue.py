"""docs/metrics.md lists exactly the metrics the code defines, and the committed Grafana
dashboards are what deploy/grafana/dashboards.py generates, over those metrics only."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"'](relayrl_[a-z0-9_]+)[\"']")
SUFFIXES = ("_bucket", "_sum", "_count")


def defined_metrics() -> dict[str, str]:
    found = {}
    for path in (ROOT / "services" / "relayrl").rglob("*.py"):
        for kind, name in DEFINITION.findall(path.read_text()):
            found[name] = kind.lower()
    return found


def documented_metrics() -> dict[str, str]:
    rows = re.findall(r"^\| `(relayrl_[a-z0-9_]+)` \| (\w+) \|", (ROOT / "docs" / "metrics.md").read_text(), re.M)
    return dict(rows)


def dashboards_module():
    path = ROOT / "deploy" / "grafana" / "dashboards.py"
    spec = importlib.util.spec_from_file_location("relayrl_dashboards", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_metric_in_the_code_is_catalogued_with_its_type():
    defined, documented = defined_metrics(), documented_metrics()
    assert len(defined) >= 20
    assert set(defined) - set(documented) == set(), "add these to docs/metrics.md"
    assert set(documented) - set(defined) == set(), "docs/metrics.md lists metrics the code no longer defines"
    assert {n: documented[n] for n in defined} == defined


def test_committed_dashboards_are_generated_and_use_only_defined_metrics():
    module = dashboards_module()
    rendered = module.render()
    assert set(rendered) == {"relayrl-overview.json", "relayrl-rollout.json", "relayrl-reward.json",
                             "relayrl-learner.json", "relayrl-queue.json"}
    for name, text in rendered.items():
        for folder in (ROOT / "deploy" / "grafana" / "dashboards", ROOT / "helm" / "relayrl" / "dashboards"):
            assert (folder / name).read_text() == text, f"{folder / name} is stale: run deploy/grafana/dashboards.py"
        board = json.loads(text)
        assert board["uid"] == name.removesuffix(".json") and board["panels"]
        assert all(t["expr"] for p in board["panels"] for t in p["targets"])
    defined = defined_metrics()
    for uid, title, expr in module.queries():
        used = {m for m in re.findall(r"relayrl_[a-z0-9_]+", expr)}
        bases = {next((m.removesuffix(s) for s in SUFFIXES if m.endswith(s) and m.removesuffix(s) in defined), m)
                 for m in used}
        assert used and bases <= set(defined), (uid, title, bases - set(defined))
        assert 'component="' in expr, (uid, title, "select the component that updates the metric")
