"""The gateway's human status page at `/`: the JSON endpoints' figures as one HTML page that
refreshes itself every 5 s. Server-rendered with the standard library (every value escaped), no
JavaScript, so a headless browser screenshots it as it is."""

from __future__ import annotations

from html import escape

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;background:#0f1419;color:#e6e6e6}
h1{font-size:22px;margin:0 0 4px} h2{font-size:15px;margin:20px 0 6px;color:#9ecbff}
.sub{color:#8b949e;margin-bottom:12px} .cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#161b22;border:1px solid #30363d;border-radius:8px;padding:10px 16px;min-width:130px}
.card .v{font-size:24px;font-weight:600} .card .k{color:#8b949e;font-size:12px}
table{border-collapse:collapse;background:#161b22;border:1px solid #30363d}
td,th{padding:4px 12px;border-bottom:1px solid #30363d;text-align:right} th{color:#8b949e;font-weight:500}
td:first-child,th:first-child{text-align:left} .bar{background:#238636;height:10px;display:inline-block}
.paused{color:#f85149} .running{color:#3fb950}
"""


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return escape(str(value))


def _card(key: str, value) -> str:
    return f'<div class="card"><div class="v">{_fmt(value)}</div><div class="k">{escape(key)}</div></div>'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class _Raw(str):
    """Markup built here from numbers only (a bar), not escaped again."""


def render(status: dict, rewards: dict, versions: dict) -> str:
    learner = status["learner"] or {}
    state = '<span class="paused">paused</span>' if status["paused"] else '<span class="running">admitting</span>'
    cards = "".join([_card("step", learner.get("step")), _card("published version", status["published_version"]),
                     _card("reward (recent groups)", rewards["mean"]), _card("groups trained", learner.get("groups_trained")),
                     _card("dropped stale", learner.get("groups_dropped_stale")), _card("max actor lag", versions["max_lag"])])
    widest = max([q["length"] for q in status["queues"].values()] + [1])
    queues = _table(["stream", "length", "waiting", "leased", "consumers", ""],
                    [[name, q["length"], q["waiting"], q["leased"], q["consumers"],
                      _Raw(f'<span class="bar" style="width:{int(160 * q["length"] / widest)}px"></span>')]
                     for name, q in status["queues"].items()])
    kinds = _table(["kind", "samples", "mean", "std", "pass", "fail", "infra_error"],
                   [[k, v["samples"], v["mean"], v["std"], v["pass"], v["fail"], v["infra_error"]]
                    for k, v in rewards["kinds"].items()])
    actors = _table(["actor", "version", "groups", "tokens"],
                    [[a["actor_id"] or a["address"], a["version"], a["groups_generated"], a["tokens_generated"]]
                     for a in versions["actors"]])
    consumers = _table(["consumer", "leased prompts", "idle ms"],
                       [[c["name"], c["leased"], c["idle_ms"]] for c in status["actors"]])
    service = rewards["service"] or {}
    return f"""<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>relayrl · {escape(status["run"])}</title><style>{_STYLE}</style></head><body>
<h1>relayrl run <code>{escape(status["run"])}</code></h1>
<div class="sub">prompt admission {state} · learner {"done" if learner.get("done") else "training" if learner else "unavailable"}
 · reward service: {_fmt(service.get("groups_scored"))} groups scored, {_fmt(service.get("groups_in_flight"))} in flight</div>
<div class="cards">{cards}</div>
<h2>Queues</h2>{queues}
<h2>Rewards over the last {rewards["groups"]} scored groups</h2>{kinds}
<h2>Rollout actors</h2>{actors}
<h2>Prompt consumers (Redis)</h2>{consumers}
</body></html>"""
