"""The actor process: the gRPC `RolloutService` beside the worker loop.

`Generate` samples completions of any prompt with the actor's current weights (evaluation,
debugging); `GetStatus` reports the served version and throughput. The worker loop runs on the
main thread and stops cleanly on SIGTERM / SIGINT.
"""

from __future__ import annotations

import logging
import signal

import grpc

from relayrl.config import SamplingConfig
from relayrl.rollout.actor import Actor, to_sample
from relayrl.wire import rollout_pb2, rollout_pb2_grpc

log = logging.getLogger("relayrl.actor")

MAX_N = 1024
MAX_PROMPT_CHARS = 65536


class RolloutServicer(rollout_pb2_grpc.RolloutServiceServicer):
    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    def Generate(self, request, context):
        problems = []
        if not request.prompt:
            problems.append("prompt is empty")
        if not 1 <= request.n <= MAX_N:
            problems.append(f"n must be in 1..{MAX_N}, got {request.n}")
        if len(request.prompt) > MAX_PROMPT_CHARS:
            problems.append(f"prompt has {len(request.prompt)} characters; at most {MAX_PROMPT_CHARS}")
        limit = self.actor.engine.max_new_tokens_limit()
        if not 0 <= request.max_new_tokens <= limit:
            problems.append(f"max_new_tokens must be in 0..{limit} (0: the run's default), got {request.max_new_tokens}")
        if request.temperature < 0 or request.top_p < 0 or request.top_p > 1 or request.top_k < 0:
            problems.append("temperature and top_k must be >= 0 and top_p in (0, 1]")
        base = self.actor.cfg.rollout.sampling
        if not problems:
            prompt_tokens = len(self.actor.engine.encode(request.prompt))
            if prompt_tokens + (request.max_new_tokens or base.max_new_tokens) > limit:
                problems.append(f"prompt ({prompt_tokens} tokens) plus max_new_tokens exceeds the context of {limit}")
        if problems:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        sampling = SamplingConfig(
            group_size=max(request.n, 2), max_new_tokens=request.max_new_tokens or base.max_new_tokens,
            temperature=request.temperature or base.temperature, top_k=request.top_k,
            top_p=request.top_p or 1.0)
        with self.actor.lock:
            completions = self.actor.engine.generate([request.prompt], sampling, seed=request.seed or None)[0]
        return rollout_pb2.GenerateResponse(samples=[to_sample("generate", i, c)
                                                     for i, c in enumerate(completions[:request.n])])

    def GetStatus(self, request, context):
        a = self.actor
        status = rollout_pb2.RolloutStatus(actor_id=a.actor_id, version=a.engine.version,
                                           groups_generated=a.groups_generated, tokens_generated=a.tokens_generated)
        if a.episodes is not None:
            s = a.episodes.stats
            with s.lock:
                status.agent.CopyFrom(rollout_pb2.AgentStatus(
                    episodes_in_flight=s.in_flight, episodes=s.episodes, turns=s.turns, episode_seconds=s.wall_s,
                    infra_retries=s.infra_retries, tool_calls={f"{t}/{o}": n for (t, o), n in s.tool_calls.items()}))
        return status


def make_engine(cfg, model_dir: str):
    """The engine `rollout.engine` names (vLLM is imported only when chosen)."""
    engine = cfg.rollout.engine
    if engine.type == "vllm":
        from relayrl.rollout.vllm_engine import VllmEngine

        return VllmEngine(model_dir, engine)
    from relayrl.rollout.engine import TransformersEngine

    return TransformersEngine(model_dir, threads=engine.torch_threads)


def serve(actor: Actor, port: int, host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    from relayrl.rpc import start_server

    name = rollout_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name
    server, bound, _ = start_server(port, [(rollout_pb2_grpc.add_RolloutServiceServicer_to_server,
                                            RolloutServicer(actor), name)], host=host, workers=4)
    return server, bound


def main(config_path: str, redis_url: str, actor_id: str, learner: str, reward: str, model_dir: str,
         port: int = 0, metrics_port: int | None = None, host: str = "127.0.0.1") -> None:
    """Entry of `relayrl serve actor`."""
    from relayrl.config import RunConfig
    from relayrl.metrics import serve_metrics
    from relayrl.replay import make_queue
    from relayrl.reward.client import GrpcRewardClient
    from relayrl.weights import make_weight_source

    cfg = RunConfig.load(config_path)
    engine = make_engine(cfg, model_dir)
    actor = Actor(cfg, actor_id, engine, make_queue(cfg.queue, redis_url), make_weight_source(learner),
                  GrpcRewardClient(reward))
    server, bound = serve(actor, port, host)
    serve_metrics(metrics_port, host)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: actor.stop.set())
    log.info("%s serving on %s:%d", actor_id, host, bound)
    try:
        actor.run()
    finally:
        server.stop(grace=1).wait()
