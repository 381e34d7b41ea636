"""`relayrl report RUN_DIR [RUN_DIR...]`: one run, or several side by side, as an HTML page and PNGs.

`runs` reads a run directory's files (metrics, evaluations, samples, config), `plots` draws the
curves a person judges an RL run by (reward and held-out accuracy, response length, entropy and
KL, staleness and drops, throughput), `page` assembles a self-contained HTML page with the config
differences and sample completions early vs late. Nothing here needs the run to be alive, or
torch: a report is made from the files alone.
"""

from __future__ import annotations

from pathlib import Path

from relayrl.report.runs import NotARun, Run, load_run


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write OUT/index.html and OUT/<figure>.png for `run_dirs`; the HTML's path."""
    from relayrl.report import page, plots

    if not run_dirs:
        raise NotARun("no run directory given")
    runs = [load_run(d) for d in run_dirs]
    _unique_names(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    for stem, draw in plots.FIGURES.items():
        png = draw(runs)
        if png is not None:
            (out / f"{stem}.png").write_bytes(png)
            figures[stem] = png
    index = out / "index.html"
    index.write_text(page.render(runs, figures))
    return index


def _unique_names(runs: list[Run]) -> None:
    """Runs whose directories share a name (a/run, b/run) are told apart by their parent."""
    names = [r.name for r in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = f"{run.path.resolve().parent.name}/{run.name}"


__all__ = ["NotARun", "Run", "load_run", "write_report"]
