"""`relayrl serve ...`: one service per command, as the single-machine launcher and a cluster run it.

Each command checks what it can before the service loads anything heavy (its ports are free, its
Redis answers, its model directory exists: `relayrl.preflight`), so a mistake is one line naming
the flag (`relayrl.cli.main` prints it), then imports and runs the service's `main`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

serve_app = typer.Typer(help="Run one service (what the single-machine launcher and a cluster start).",
                        no_args_is_help=True)


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")


# Options every `serve` command shares, with one help text each.
CONFIG_OPTION = typer.Option(..., exists=True, dir_okay=False, help="Run config (YAML): the same file for every service.")
# A Redis URL may hold a password: containers pass it in the environment, not on a command line
# that every process in the container (a sandbox with the container's /proc included) can read.
REDIS_OPTION = typer.Option(None, envvar="RELAYRL_REDIS_URL", show_envvar=True,
                            help="redis:// URL of the run's Redis (overrides queue.url).")
METRICS_PORT_OPTION = typer.Option(None, min=1, max=65535,
                                   help="Serve Prometheus /metrics on this port (none: no metrics).")
HOST_OPTION = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
LEARNER_ADDR_OPTION = typer.Option(..., help="host:port of the learner, a weight relay, or bulk://host:port.")
REWARD_ADDR_OPTION = typer.Option(..., help="host:port of the reward service.")


def _port_option(default: int, what: str):
    return typer.Option(default, min=0, max=65535, help=f"gRPC port {what} listens on (0: any free one).")


def _check_service(host: str, ports: dict[str, int | None], config: Path | None = None,
                   redis: str | None = None) -> None:
    """Before a service starts: its ports are free, its Redis (the flag, else queue.url) answers,
    and RELAYRL_AUTH_TOKEN is not set empty."""
    from relayrl import preflight
    from relayrl.rpc import auth_token

    auth_token()  # set but empty: refused here, before the service loads anything
    for flag, port in ports.items():
        preflight.free_port(port, host, flag)
    if redis is None and config is not None:
        from relayrl.config import RunConfig

        redis = getattr(RunConfig.load(config).queue, "url", None)
    preflight.redis_answers(redis)


@serve_app.command("reward")
def serve_reward(config: Path = CONFIG_OPTION, redis: str | None = REDIS_OPTION,
                 port: int = _port_option(50051, "the reward service"), metrics_port: int | None = METRICS_PORT_OPTION,
                 host: str = HOST_OPTION) -> None:
    """The reward service (gRPC)."""
    _check_service(host, {"--port": port, "--metrics-port": metrics_port}, config, redis)
    _logging()
    from relayrl.reward.server import main

    main(str(config), port=port, redis_url=redis, metrics_port=metrics_port, host=host)


@serve_app.command("learner")
def serve_learner(config: Path = CONFIG_OPTION,
                  model: Path = typer.Option(..., help="The initial policy (a Hugging Face model directory); "
                                                       "also the KL reference."),
                  out: Path = typer.Option(..., help="Output directory: checkpoints, metrics.jsonl, ledger.jsonl. "
                                                     "One that holds a checkpoint is continued."),
                  redis: str | None = REDIS_OPTION, port: int = _port_option(50052, "the learner"),
                  steps: int | None = typer.Option(None, min=1, help="Optimizer steps in all (overrides "
                                                                     "learner.steps)."),
                  metrics_port: int | None = METRICS_PORT_OPTION, host: str = HOST_OPTION,
                  fresh: bool = typer.Option(False, help="Refuse to start over an existing run (a checkpoint in "
                                                         "OUT, or the run's streams in Redis) instead of continuing it."),
                  resume: bool = typer.Option(False, hidden=True, help="The default; kept for old command lines.")) -> None:
    """The learner: trains and serves weight versions (gRPC). Restart is resume: it continues from
    the newest checkpoint in OUT, as a new epoch (actors and relays drop the old lineage's weights)."""
    from relayrl import preflight
    from relayrl.config import RunConfig

    if fresh and resume:
        raise preflight.StartupError("--fresh and --resume contradict each other: pass one")
    cfg = RunConfig.load(config)
    preflight.writable_dir(out, "--out")
    preflight.model_dir(model, "--model")
    preflight.task_source(cfg.task)
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 listens
        _check_service(host, {"--port": port, "--metrics-port": metrics_port})
    preflight.redis_answers(redis or getattr(cfg.queue, "url", None))
    _logging()
    from relayrl.learner.server import main

    main(str(config), redis, port, str(out), str(model), steps=steps, metrics_port=metrics_port, host=host,
         fresh=fresh)


@serve_app.command("actor")
def serve_actor(config: Path = CONFIG_OPTION,
                model: Path = typer.Option(..., help="The initial policy (the learner's --model): version 0."),
                learner: str = LEARNER_ADDR_OPTION, reward: str = REWARD_ADDR_OPTION,
                actor_id: str = typer.Option("actor-0", help="This actor's name: its Redis consumer and metrics."),
                redis: str | None = REDIS_OPTION, port: int = _port_option(0, "the actor's RolloutService"),
                metrics_port: int | None = METRICS_PORT_OPTION, host: str = HOST_OPTION) -> None:
    """A rollout actor: generates groups and follows weight versions (gRPC)."""
    from relayrl import preflight

    preflight.model_dir(model, "--model")
    _check_service(host, {"--port": port, "--metrics-port": metrics_port}, config, redis)
    _logging()
    from relayrl.rollout.server import main

    main(str(config), redis, actor_id, learner, reward, str(model), port=port, metrics_port=metrics_port, host=host)


@serve_app.command("evaluator")
def serve_evaluator(config: Path = CONFIG_OPTION,
                    model: Path = typer.Option(..., help="The initial policy (the learner's --model): version 0, "
                                                         "and the architecture later versions are loaded into."),
                    learner: str = LEARNER_ADDR_OPTION, redis: str | None = REDIS_OPTION,
                    steps: int | None = typer.Option(None, min=1, help="The run's last version, always evaluated "
                                                                       "(default learner.steps)."),
                    name: str = typer.Option("evaluator", help="This evaluator's name in its results and log.")) -> None:
    """The evaluator: follows the weight versions and evaluates the newest every eval.every_steps on
    held-out data (eval.datasets); results reach the learner through Redis (OUT/eval.jsonl)."""
    from relayrl import preflight

    preflight.model_dir(model, "--model")
    _check_service("127.0.0.1", {}, config, redis)
    _logging()
    from relayrl.evaluation.live import main

    main(str(config), redis, learner, str(model), steps=steps, name=name)


@serve_app.command("reward-worker")
def serve_reward_worker(config: Path = CONFIG_OPTION, redis: str | None = REDIS_OPTION,
                        worker_id: str | None = typer.Option(None, help="Consumer name (default host-pid)."),
                        concurrency: int | None = typer.Option(None, min=1,
                                                           help="Jobs at once (overrides reward.slow_lane.concurrency)."),
                        metrics_port: int | None = METRICS_PORT_OPTION, host: str = HOST_OPTION) -> None:
    """A reward worker: leases slow-lane jobs (SWE) from Redis and scores them."""
    _check_service(host, {"--metrics-port": metrics_port}, config, redis)
    from relayrl.reward.worker import main

    main(str(config), redis_url=redis, worker_id=worker_id, concurrency=concurrency, metrics_port=metrics_port,
         host=host)


@serve_app.command("gateway")
def serve_gateway(config: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                                     help="Run config: run name, queue.url."),
                  endpoints: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                                        help="A local run's OUT/endpoints.json: every address."),
                  run: str | None = typer.Option(None, help="Run name (Redis key prefix)."),
                  redis: str | None = typer.Option(None, help="redis:// URL of the run's Redis."),
                  learner: str | None = typer.Option(None, help="host:port of the learner."),
                  reward: str | None = typer.Option(None, help="host:port of the reward service."),
                  actor: list[str] | None = typer.Option(None, help="host:port of an actor (repeatable)."),
                  port: int = typer.Option(8080, min=0, max=65535, help="HTTP port to listen on."),
                  host: str = HOST_OPTION) -> None:
    """The gateway: the run's control plane over HTTP (status, versions, queues, rewards, pause/resume;
    OpenAPI at /docs, Prometheus at /metrics). Unset options come from RELAYRL_GATEWAY_*
    environment variables."""
    _check_service(host, {"--port": port})
    from relayrl.gateway.server import main, settings_from

    settings = settings_from(config, endpoints, run=run, redis_url=redis, learner=learner, reward=reward,
                             actors=actor)
    main(settings, host=host, port=port)


@serve_app.command("rollout")
def serve_rollout(config: Path = CONFIG_OPTION,
                  model: Path = typer.Option(..., exists=True, help="The initial policy (the learner's --model)."),
                  learner: str = typer.Option(..., help="host:port of the learner or a weight relay"),
                  ray: bool = typer.Option(False, "--ray", help="Run the fleet as a Ray Serve application."),
                  redis: str | None = typer.Option(None, help="With --reward: replicas also lease prompts."),
                  reward: str | None = typer.Option(None, help="host:port of the reward service"),
                  address: str | None = typer.Option(None, help="Ray cluster address; none: start a local one."),
                  http_port: int = typer.Option(8000, min=0, max=65535, help="Ray Serve HTTP port (POST /generate).")) -> None:
    """The rollout fleet with autoscaling (rollout.ray): replicas follow weight versions."""
    _logging()
    if not ray:
        typer.echo("serve rollout needs --ray (one actor process: `relayrl serve actor`)", err=True)
        raise typer.Exit(2)
    from relayrl.rollout.ray_serve import main

    main(str(config), str(model), learner, redis, reward, address, http_port)


@serve_app.command("relay")
def serve_relay(upstream: str = typer.Option(..., help="host:port of the learner or of another relay"),
                port: int = _port_option(50060, "the relay"), host: str = HOST_OPTION,
                chunk_bytes: int = typer.Option(4 * 1024 * 1024, min=1024, help="Bytes per GetWeights chunk."),
                poll_s: float = typer.Option(0.5, min=0.01, help="Seconds between checks for a newer version upstream."),
                bulk_port: int | None = typer.Option(None, min=0, max=65535,
                                                     help="Also serve bulk://host:PORT (raw TCP, socket speed).")) -> None:
    """A per-node weight relay: pulls each version once, serves it to the node's actors (`--learner`)."""
    _check_service(host, {"--port": port, "--bulk-port": bulk_port})
    _logging()
    from relayrl.weights.relay import main

    main(upstream, port, host, chunk_bytes=chunk_bytes, poll_s=poll_s, bulk_port=bulk_port)
