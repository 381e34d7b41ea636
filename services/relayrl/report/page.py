"""The report as one self-contained HTML file: figures inlined as base64 PNGs, no script, no
external resource, every value from a run escaped (completions are the policy's text: untrusted),
so it opens anywhere, mails as one attachment and a headless browser screenshots it as it is."""

from __future__ import annotations

import base64
import json
from html import escape

from relayrl.report.runs import Run, config_diff

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1320px;color:#1f2328;background:#fff}
h1{font-size:24px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:14px;margin:14px 0 6px;color:#57606a} .sub{color:#57606a;margin-bottom:16px}
table{border-collapse:collapse;font-size:13px;margin-bottom:8px}
td,th{padding:4px 10px;border:1px solid #d0d7de;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #d0d7de;border-radius:6px;margin:6px 0}
code,pre{font-family:ui-monospace,monospace;font-size:12px} pre{white-space:pre-wrap;margin:0;max-width:520px}
.good{color:#1a7f37} .bad{color:#cf222e}
"""


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | dict):
        return escape(json.dumps(value))
    return escape(str(value))


def _table(header: list[str], rows: list[list], raw: bool = False) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_fmt(c)}</td>' if isinstance(c, int | float) and not isinstance(c, bool) else
        f"<td>{c if raw else _fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _last_eval(run: Run) -> str:
    if not run.evals:
        return "–"
    last = max(run.evals, key=lambda r: r["version"])["version"]
    return ", ".join(f"{escape(r['dataset'])} {r['pass@1']:.3f} (v{last})" for r in run.evals if r["version"] == last)


def summary_table(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        first, last = run.metrics[0], run.metrics[-1]
        n = max(1, len(run.metrics) // 10)
        reward_first = sum(r["reward_mean"] for r in run.metrics[:n]) / n
        reward_last = sum(r["reward_mean"] for r in run.metrics[-n:]) / n
        algo = run.config.get("learner", {}).get("loss", {}).get("algorithm", "–")
        rows.append([run.name, algo, last["step"], round(reward_first, 3), round(reward_last, 3), _last_eval(run),
                     round(last.get("wall_s", 0.0), 1), round((last["step"] - first["step"]) /
                                                              max(last.get("wall_s", 0) - first.get("wall_s", 0), 1e-9), 2)])
    return _table(["run", "algorithm", "steps", "reward, first 10%", "reward, last 10%", "held-out pass@1 (last)",
                   "training wall s", "steps/s"], rows)


def _samples(run: Run) -> str:
    steps = sorted({s["step"] for s in run.samples})
    if not steps:
        return "<p>no samples logged (tracking.samples_every: 0)</p>"
    parts = []
    for label, step in (("early", steps[0]), ("late", steps[-1])):
        rows = [[f"<pre>{escape(s.get('prompt', ''))[-400:]}</pre>", f"<pre>{escape(s.get('completion', ''))[:600]}</pre>",
                 _fmt(s.get("reward")), _fmt(s.get("version"))] for s in run.samples if s["step"] == step]
        parts.append(f"<h3>{label}: step {step}</h3>" + _table(["prompt", "completion", "reward", "version"], rows, raw=True))
    return "".join(parts)


def render(runs: list[Run], figures: dict[str, bytes]) -> str:
    """The whole page; `figures`: file stem → PNG bytes, in order."""
    names = ", ".join(escape(r.name) for r in runs)
    imgs = "".join(f'<img alt="{escape(stem)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                   for stem, png in figures.items())
    diff = config_diff(runs)
    if len(runs) > 1:
        config = (_table(["key", *(r.name for r in runs)], [[k, *vs] for k, vs in diff]) if diff
                  else "<p>the runs' configs are the same</p>")
        config_title = "Config differences"
    else:
        config = _table(["key", "value"], [[k, v] for k, v in _flat(runs[0].config)])
        config_title = "Config"
    samples = "".join(f"<h2>Sample completions: {escape(r.name)}</h2>{_samples(r)}" for r in runs)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>relayrl report · {names}</title>
<style>{_STYLE}</style></head><body>
<h1>relayrl report</h1><div class="sub">{names}</div>
{summary_table(runs)}
{imgs}
<h2>{config_title}</h2>{config}
{samples}
</body></html>
"""


def _flat(config: dict) -> list[tuple[str, object]]:
    from relayrl.report.runs import flatten

    return sorted(flatten(config).items())
