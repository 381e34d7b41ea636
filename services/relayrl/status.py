"""`relayrl status RUN_DIR`: one terminal screen of a live or finished run (rich), the twin of the
gateway's status page.

From the run directory's files: the last step's figures (metrics.jsonl), the newest held-out
evaluation (eval.jsonl), the end-of-run summary, and the last error lines of every process's log
(OUT/logs). From the live run, found through OUT/endpoints.json and OUT/auth-token: the learner's
status, the queues and the actors, read by the gateway's own `RunState`. A run whose processes do
not answer is shown from its files alone: finished when summary.json exists, stopped otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback|^\w+(Error|Exception): |exited with code")


@dataclass
class Snapshot:
    """What the screen shows; `live` is None when no process of the run answered."""

    out: Path
    run: str
    target_steps: int | None
    last: dict | None
    evals: list[dict]
    summary: dict | None
    learner_status: dict | None
    errors: list[tuple[str, str]]
    live: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.summary is not None:
            return "finished"
        if self.live and self.live.get("learner"):
            return "done, shutting down" if self.live["learner"]["done"] else "training"
        if self.learner_status is not None:
            return "learner done, no summary.json (launcher stopped early)"
        return "not running (no process answers; stopped or crashed)"


def _jsonl_tail(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a live run's half-written last line
            continue
    return out


def last_errors(logs: Path, keep: int = 6) -> list[tuple[str, str]]:
    """(log name, line) of the last error lines across OUT/logs/*.log, oldest first."""
    found: list[tuple[float, int, str, str]] = []
    for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        lines = log.read_text(errors="replace").splitlines()
        hits = [(i, line) for i, line in enumerate(lines) if ERROR_LINE.search(line)]
        found += [(log.stat().st_mtime, i, log.stem, line.strip()[:220]) for i, line in hits[-keep:]]
    found.sort()
    return [(name, line) for _, _, name, line in found[-keep:]]


def _live(out: Path, timeout_s: float) -> tuple[dict | None, list[str]]:
    """The learner's status, queues and actors from the running run; (None, why) when it does not answer."""
    endpoints = out / "endpoints.json"
    if not endpoints.exists():
        return None, ["no endpoints.json: not started by `relayrl train`, or not started yet"]
    import redis

    from relayrl.gateway.settings import GatewaySettings
    from relayrl.gateway.state import RunState

    state = RunState(GatewaySettings.from_endpoints(endpoints, rpc_timeout_s=timeout_s))
    try:
        learner = state.learner_status()
        try:
            queues, consumers, paused = state.queues(), state.actor_consumers(), state.paused()
        except redis.RedisError as exc:  # a display: a stopped run's Redis is gone, its files remain
            return ({"learner": learner, "queues": None, "actors": state.actor_statuses(), "consumers": [],
                     "paused": None} if learner else None), [f"Redis not reachable: {exc}"]
        return {"learner": learner, "queues": queues, "actors": state.actor_statuses(), "consumers": consumers,
                "paused": paused}, []
    finally:
        state.close()


def snapshot(out: str | Path, timeout_s: float = 1.0) -> Snapshot:
    """Everything the screen shows of the run in `out`."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such run directory")
    endpoints = json.loads((out / "endpoints.json").read_text()) if (out / "endpoints.json").exists() else {}
    metrics = _jsonl_tail(out / "metrics.jsonl")
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    status_file = out / "learner-status.json"
    snap = Snapshot(out=out, run=endpoints.get("run", out.name), target_steps=endpoints.get("steps"),
                    last=metrics[-1] if metrics else None, evals=_jsonl_tail(out / "eval.jsonl"), summary=summary,
                    learner_status=json.loads(status_file.read_text()) if status_file.exists() else None,
                    errors=last_errors(out / "logs"))
    if summary is None:
        snap.live, snap.notes = _live(out, timeout_s)
    return snap


def _f(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render(snap: Snapshot):
    """The screen as one rich renderable."""
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    learner = (snap.live or {}).get("learner") or {}
    last = snap.last or {}
    step = learner.get("step", last.get("step"))
    target = f" / {snap.target_steps}" if snap.target_steps else ""
    head = Table.grid(padding=(0, 3))
    for _ in range(5):
        head.add_column()
    head.add_row("[bold]state[/]", "[bold]step[/]", "[bold]version[/]", "[bold]reward (last step)[/]", "[bold]held-out[/]")
    newest = max((r["version"] for r in snap.evals), default=None)
    held = ", ".join(f"{escape(r['dataset'])} pass@1 {r['pass@1']:.3f} (v{newest})" for r in snap.evals if r["version"] == newest)
    head.add_row(snap.state, f"{_f(step)}{target}", _f(learner.get("version", last.get("version"))),
                 _f(learner.get("last_reward_mean", last.get("reward_mean"))), held or "–")
    parts = [Panel(head, title=f"relayrl run [bold]{escape(snap.run)}[/]  ({escape(str(snap.out))})", title_align="left")]

    keys = [("reward_accuracy_mean", "accuracy"), ("reward_format_mean", "format"), ("entropy", "entropy"),
            ("kl", "KL to reference"), ("mismatch_kl", "mismatch KL"), ("clip_frac", "clip fraction"),
            ("response_length_mean", "mean length"), ("staleness_mean", "staleness"), ("tokens_per_s", "tokens/s"),
            ("train_s", "train s"), ("wait_s", "wait s"), ("weight_sync_s", "weight sync s")]
    shown = [(label, _f(last[k])) for k, label in keys if k in last]
    if shown:
        training = Table(title="Last step", title_justify="left", show_header=False)
        for col in range(6):
            training.add_column(style="bold" if col % 2 == 0 else None, justify="left" if col % 2 == 0 else "right")
        for i in range(0, len(shown), 3):
            row = [x for pair in shown[i:i + 3] for x in pair]
            training.add_row(*row, *[""] * (6 - len(row)))
        parts.append(training)
    if snap.evals:
        ev = Table(title="Held-out evaluation (newest 6)", title_justify="left")
        for col in ("version", "dataset", "pass@1", "cons@k", "format", "seconds"):
            ev.add_column(col, justify="right")
        for r in snap.evals[-6:]:
            ev.add_row(str(r["version"]), escape(r["dataset"]), _f(r["pass@1"]), _f(r["cons@k"]), _f(r["format"]),
                       _f(r.get("eval_s"), 1))
        parts.append(ev)
    if snap.live and snap.live.get("queues"):
        q = Table(title="Queues" + (" (admission paused)" if snap.live.get("paused") else ""), title_justify="left")
        for col in ("stream", "length", "waiting", "leased", "consumers"):
            q.add_column(col, justify="right")
        for name, v in snap.live["queues"].items():
            q.add_row(name, str(v["length"]), str(v["waiting"]), str(v["leased"]), str(v["consumers"]))
        parts.append(q)
    if snap.live and snap.live.get("actors"):
        a = Table(title="Actors", title_justify="left")
        for col in ("actor", "answers", "version", "groups", "tokens"):
            a.add_column(col, justify="right")
        for r in snap.live["actors"]:
            a.add_row(escape(r["actor_id"] or r["address"]), "yes" if r["available"] else "[red]no[/]", _f(r["version"]),
                      _f(r["groups_generated"]), _f(r["tokens_generated"]))
        parts.append(a)
    if snap.summary:
        parts.append(Panel(escape(json.dumps(snap.summary)), title="summary.json", title_align="left"))
    errors = Table(title="Last errors (OUT/logs)", title_justify="left", show_header=False)
    errors.add_column("log", style="bold")
    errors.add_column("line", overflow="fold")
    for name, line in snap.errors:
        errors.add_row(escape(name), escape(line))
    parts.append(errors if snap.errors else "[green]no errors in the logs[/]")
    parts += [f"[dim]{escape(note)}[/]" for note in snap.notes]
    return Group(*parts)


def show(out: str | Path, timeout_s: float = 1.0, watch_s: float | None = None) -> None:
    """Print the screen once, or with `watch_s` redraw it every that many seconds until Ctrl-C."""
    import time

    from rich.console import Console
    from rich.live import Live

    console = Console()
    if watch_s is None:
        console.print(render(snapshot(out, timeout_s)))
        return
    with Live(render(snapshot(out, timeout_s)), console=console) as live:
        try:
            while True:
                time.sleep(watch_s)
                live.update(render(snapshot(out, timeout_s)))
        except KeyboardInterrupt:  # the way a person leaves --watch
            pass
