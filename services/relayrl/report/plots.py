"""The report's figures (matplotlib, Agg backend): one PNG per theme, every run in its own colour.

Training curves are drawn raw (faint) and as a moving average over ~1/25 of the run (bold), the
way a person reads a noisy RL curve; held-out evaluations are points joined by a dashed line at
the version they evaluated. Each function returns PNG bytes, or None when no run has the data
(a run without evaluation has no held-out panel to draw).
"""

from __future__ import annotations

import io

from relayrl.report.runs import Run


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average over `window` points (shorter at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _colour(i: int):
    return _plt().get_cmap("tab10")(i % 10)


def _curve(ax, run: Run, i: int, key: str, label: str, style: str = "-", skip: int = 0) -> bool:
    steps, values = run.series(key)
    steps, values = steps[skip:], values[skip:]
    if not steps:
        return False
    window = max(1, len(values) // 25)
    if window > 1:
        ax.plot(steps, values, style, color=_colour(i), alpha=0.2, linewidth=0.8)
    ax.plot(steps, smooth(values, window), style, color=_colour(i), linewidth=1.8, label=label)
    return True


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    _plt().close(fig)
    return buf.getvalue()


def _panels(n: int, title: str):
    fig, axes = _plt().subplots(1, n, figsize=(6.2 * n, 3.6), squeeze=False)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.set_xlabel("step")
    return fig, list(axes[0])


def reward_accuracy(runs: list[Run]) -> bytes | None:
    """Training reward (and the accuracy component) beside held-out pass@1 and cons@k."""
    fig, (train, held) = _panels(2, "Reward and accuracy")
    for i, run in enumerate(runs):
        _curve(train, run, i, "reward_mean", f"{run.name} reward")
        if run.has("reward_accuracy_mean") and run.series("reward_accuracy_mean")[1] != run.series("reward_mean")[1]:
            _curve(train, run, i, "reward_accuracy_mean", f"{run.name} accuracy", "--")
        for dataset in run.eval_datasets():
            versions, passes = run.eval_series(dataset)
            held.plot(versions, passes, "o--", color=_colour(i), label=f"{run.name} {dataset} pass@1")
            versions, cons = run.eval_series(dataset, "cons@k")
            held.plot(versions, cons, "s:", color=_colour(i), alpha=0.6, markersize=4, label=f"{run.name} {dataset} cons@k")
    train.set_title("training batches (mean reward)")
    held.set_title("held-out evaluation")
    held.set_xlabel("version (= step)")
    if not any(r.evals for r in runs):
        held.text(0.5, 0.5, "no evaluation in these runs\n(eval.every_steps: 0)", ha="center", va="center",
                  transform=held.transAxes, color="grey")
    for ax in (train, held):
        low, high = ax.get_ylim()
        if low >= -0.1 and high <= 1.1:  # rewards and accuracies in [0, 1]: show the whole scale
            ax.set_ylim(-0.02, 1.02)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _png(fig)


def _two(runs: list[Run], title: str, left: tuple[str, list[tuple[str, str]]], right: tuple[str, list[tuple[str, str]]],
         skip: int = 0) -> bytes | None:
    """Two panels of curves: (panel title, [(metrics key, label suffix)]) each; `skip`: leave out
    each run's first steps."""
    if not any(run.has(key) for run in runs for _, keys in (left, right) for key, _ in keys):
        return None
    fig, axes = _panels(2, title)
    for ax, (panel, keys) in zip(axes, (left, right)):
        ax.set_title(panel)
        for i, run in enumerate(runs):
            for j, (key, suffix) in enumerate(keys):
                _curve(ax, run, i, key, f"{run.name} {suffix}", ("-", "--", ":", "-.")[j % 4], skip)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _png(fig)


def length(runs: list[Run]) -> bytes | None:
    return _two(runs, "Response length over training (the R1 curve)",
                ("mean completion length (tokens)", [("response_length_mean", "mean")]),
                ("longest completion / share cut at max_new_tokens",
                 [("response_length_max", "max"), ("response_clip_frac", "share truncated")]))


def entropy_kl(runs: list[Run]) -> bytes | None:
    return _two(runs, "Entropy and KL", ("entropy (nats per token)", [("entropy", "entropy")]),
                ("KL to the reference / behaviour-learner mismatch",
                 [("kl", "KL to reference"), ("mismatch_kl", "mismatch KL")]))


def staleness_drops(runs: list[Run]) -> bytes | None:
    reasons = sorted({k.removeprefix("dropped_") for run in runs for r in run.metrics for k, v in r.items()
                      if k.startswith("dropped_") and v})  # the reasons that happened
    return _two(runs, "Staleness and drops",
                ("staleness at training (versions)", [("staleness_mean", "mean"), ("staleness_max", "max")]),
                ("groups dropped so far, by reason", [(f"dropped_{reason}", reason) for reason in reasons]))


def throughput(runs: list[Run]) -> bytes | None:
    return _two(runs, "Throughput (step 1, which waits for the first groups, left out)",
                ("tokens trained per second", [("tokens_per_s", "tokens/s")]),
                ("seconds per step", [("train_s", "train"), ("wait_s", "wait for data"),
                                      ("weight_sync_s", "weight publish")]), skip=1)


FIGURES = {"reward_accuracy": reward_accuracy, "length": length, "entropy_kl": entropy_kl,
           "staleness_drops": staleness_drops, "throughput": throughput}
"""file stem → the function drawing it, in the report's order."""
