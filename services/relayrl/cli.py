"""The `relayrl` command: train on one machine, run a single service, build models, score rewards.

A thin entrypoint: it parses arguments and the config, then imports the heavy parts (torch,
transformers, gRPC services) inside each command, so `relayrl --help` answers at once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="relayrl: RL from verifiable rewards as independent services.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
serve_app = typer.Typer(help="Run one service (what the single-machine launcher and a cluster start).",
                        no_args_is_help=True)
model_app = typer.Typer(help="Build and convert policy models.", no_args_is_help=True)
score_app = typer.Typer(help="Score one response with a verifier and print JSON (debugging rewards).",
                        no_args_is_help=True)
app.add_typer(serve_app, name="serve")
app.add_typer(model_app, name="model")
app.add_typer(score_app, name="score")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@app.command()
def train(config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Run config (YAML)."),
          steps: Optional[int] = typer.Option(None, min=1, help="Optimizer steps (overrides learner.steps)."),
          out: Path = typer.Option(Path("runs/latest"), help="Output directory: checkpoints, logs, summary.json."),
          quiet: bool = typer.Option(False, help="No progress display.")) -> None:
    """Train on this machine: a private Redis, the reward service, the learner and the actors as
    separate processes on loopback; writes OUT/summary.json at the end."""
    from relayrl.config import RunConfig
    from relayrl.local import run_local

    cfg = RunConfig.load(config)
    try:
        summary = run_local(cfg, out, steps=steps, progress=not quiet)
    except KeyboardInterrupt:
        typer.echo("interrupted: every process of the run was stopped", err=True)
        raise typer.Exit(130)
    except RuntimeError as exc:  # a child died: the launcher already stopped the others
        typer.echo(f"run failed: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(summary))


@serve_app.command("reward")
def serve_reward(config: Path = typer.Option(..., exists=True), redis: Optional[str] = typer.Option(None),
                 port: int = typer.Option(50051), metrics_port: Optional[int] = typer.Option(None),
                 host: str = typer.Option("127.0.0.1")) -> None:
    """The reward service (gRPC)."""
    _logging()
    from relayrl.reward.server import main

    main(str(config), port=port, redis_url=redis, metrics_port=metrics_port, host=host)


@serve_app.command("learner")
def serve_learner(config: Path = typer.Option(..., exists=True), model: Path = typer.Option(..., exists=True),
                  out: Path = typer.Option(...), redis: Optional[str] = typer.Option(None),
                  port: int = typer.Option(50052), steps: Optional[int] = typer.Option(None),
                  metrics_port: Optional[int] = typer.Option(None), host: str = typer.Option("127.0.0.1")) -> None:
    """The learner: trains and serves weight versions (gRPC)."""
    _logging()
    from relayrl.learner.server import main

    main(str(config), redis, port, str(out), str(model), steps=steps, metrics_port=metrics_port, host=host)


@serve_app.command("actor")
def serve_actor(config: Path = typer.Option(..., exists=True), model: Path = typer.Option(..., exists=True),
                learner: str = typer.Option(..., help="host:port of the learner"),
                reward: str = typer.Option(..., help="host:port of the reward service"),
                actor_id: str = typer.Option("actor-0"), redis: Optional[str] = typer.Option(None),
                port: int = typer.Option(0), metrics_port: Optional[int] = typer.Option(None),
                host: str = typer.Option("127.0.0.1")) -> None:
    """A rollout actor: generates groups and follows weight versions (gRPC)."""
    _logging()
    from relayrl.rollout.server import main

    main(str(config), redis, actor_id, learner, reward, str(model), port=port, metrics_port=metrics_port, host=host)


@model_app.command("init-tiny")
def init_tiny(out: Path = typer.Argument(..., help="Directory to write the model and tokenizer to."),
              config: Optional[Path] = typer.Option(None, exists=True, help="Take model.tiny from this run config.")) -> None:
    """Build a small random Qwen2 and a locally trained tokenizer (no downloads)."""
    from relayrl.config import RunConfig
    from relayrl.model.tiny import init_tiny as build

    tiny = RunConfig.load(config).model.tiny if config else RunConfig().model.tiny
    path = build(out, tiny)
    typer.echo(f"wrote {path}")


@score_app.command("math")
def score_math(response: str = typer.Option(..., help="The model's response text."),
               gold: str = typer.Option(..., help="The gold answer."),
               config: Optional[Path] = typer.Option(None, exists=True, help="Take reward weights from this config.")) -> None:
    """Score a math response: accuracy (math-verify) and format, weighted as in the config."""
    from relayrl.config import RunConfig
    from relayrl.reward.math_verifier import MathVerifier

    cfg = RunConfig.load(config).reward if config else RunConfig().reward
    verifier = MathVerifier(cfg)
    try:
        score = verifier.score(response, gold)
    finally:
        verifier.close()
    typer.echo(json.dumps({"outcome": score.outcome, "score": score.reward, "components": score.components,
                           "details": score.details}))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
