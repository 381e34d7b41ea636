"""A run directory as the report reads it: the files the learner and launcher leave under OUT.

`metrics.jsonl` (one record per step) is required; `eval.jsonl` (held-out evaluations),
`samples.jsonl` (completions every few steps), `config.yaml` (the resolved config) and
`summary.json` (the launcher's end-of-run summary) are used when present. A directory without
metrics.jsonl is not a run: `load_run` says so in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class NotARun(ValueError):
    """A path given as a run directory is not one."""


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines):  # a live run's half-written last line
                break
            raise NotARun(f"{path}: line {n} is not JSON ({exc.msg})") from None
    return out


@dataclass
class Run:
    """One run's records."""

    name: str
    path: Path
    metrics: list[dict]
    evals: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    summary: dict | None = None

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of a metrics key, over the steps that have it."""
        pts = [(r["step"], float(r[key])) for r in self.metrics if isinstance(r.get(key), int | float)]
        return [s for s, _ in pts], [v for _, v in pts]

    def has(self, key: str) -> bool:
        return any(key in r for r in self.metrics)

    def eval_datasets(self) -> list[str]:
        return list(dict.fromkeys(r["dataset"] for r in self.evals))

    def eval_series(self, dataset: str, key: str = "pass@1") -> tuple[list[int], list[float]]:
        pts = sorted((r["version"], float(r[key])) for r in self.evals if r["dataset"] == dataset)
        return [v for v, _ in pts], [x for _, x in pts]


def load_run(path: str | Path) -> Run:
    """Read a run directory (NotARun when it has no metrics.jsonl or a broken file)."""
    path = Path(path)
    if not path.is_dir():
        raise NotARun(f"{path}: not a directory")
    metrics = _jsonl(path / "metrics.jsonl")
    if not metrics:
        raise NotARun(f"{path}: no metrics.jsonl records (not a relayrl run directory, or no step trained yet)")
    config = {}
    if (path / "config.yaml").exists():
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else None
    return Run(name=path.resolve().name, path=path, metrics=metrics, evals=_jsonl(path / "eval.jsonl"),
               samples=_jsonl(path / "samples.jsonl"), config=config, summary=summary)


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """{"learner": {"optim": {"lr": 1e-3}}} → {"learner.optim.lr": 1e-3}."""
    out: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_diff(runs: list[Run]) -> list[tuple[str, list]]:
    """(key, value in each run) for every config key whose value is not the same in all runs."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flat)) if flat else []
    missing = object()
    rows = []
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, ["(unset)" if v is missing else v for v in values]))
    return rows
