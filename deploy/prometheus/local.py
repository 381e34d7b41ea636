"""A Prometheus config that scrapes a local run: `python deploy/prometheus/local.py OUT/endpoints.json`.

`relayrl train` writes OUT/endpoints.json with every service's metrics port; this turns it into
a scrape config whose targets carry the `component` label the dashboards select on (learner,
reward, actor), the same labels the compose file's config and the chart's ServiceMonitors set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def component(name: str) -> str:
    """The service's component: `actor-3` → `actor`."""
    return name.split("-", 1)[0]


def scrape_config(endpoints: dict, interval_s: float = 5.0) -> dict:
    by_component: dict[str, list[str]] = {}
    for name, e in sorted(endpoints["services"].items()):
        by_component.setdefault(component(name), []).append(f"127.0.0.1:{e['metrics_port']}")
    interval = f"{interval_s:g}s"
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": "relayrl",
                                "static_configs": [{"targets": targets, "labels": {"component": c, "run": endpoints["run"]}}
                                                   for c, targets in sorted(by_component.items())]}]}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: local.py OUT/endpoints.json  (prints a prometheus.yml)")
    print(yaml.safe_dump(scrape_config(json.loads(Path(sys.argv[1]).read_text())), sort_keys=False), end="")
