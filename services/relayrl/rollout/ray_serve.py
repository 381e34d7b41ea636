"""The rollout fleet as a Ray Serve application with autoscaling (`relayrl serve rollout --ray`).

Each replica holds one engine (transformers or vLLM, as `rollout.engine` says) and follows the
learner's weight versions on its own: it loads the newest version before it serves (a replica
the autoscaler adds late starts on the newest weights) and then polls the learner, or a node's
weight relay, every `rollout.ray.poll_s` and loads a newer version in place. A replica answers
`generate` calls (Ray Serve routes them and scales the replica count on the requests in flight,
between `min_replicas` and `max_replicas`) and, when it is given Redis and the reward service,
also runs the actor worker loop, so the fleet consumes the prompts stream like `serve actor`
processes do. Ray and Ray Serve are imported only here (the `ray` extra).
"""

from __future__ import annotations

import logging
import threading

from relayrl.config import RunConfig, SamplingConfig

log = logging.getLogger("relayrl.ray")

MAX_N = 1024


def check_request(req: dict) -> list[str]:
    """What is wrong with a generate request (empty when nothing is)."""
    problems = []
    if not isinstance(req.get("prompt"), str) or not req.get("prompt"):
        problems.append("prompt must be a non-empty string")
    n = req.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= MAX_N:
        problems.append(f"n must be an integer in 1..{MAX_N}")
    mnt = req.get("max_new_tokens", 0)
    if not isinstance(mnt, int) or mnt < 0:
        problems.append("max_new_tokens must be an integer >= 0")
    return problems


class RolloutReplica:
    """One replica: an engine, a weight follower thread, optionally the actor worker loop."""

    def __init__(self, cfg: dict, model_dir: str, learner: str, redis_url: str | None = None,
                 reward: str | None = None) -> None:
        from ray import serve

        from relayrl.rollout.server import make_engine
        from relayrl.weights import make_weight_source

        self.cfg = RunConfig.model_validate(cfg)
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self.engine = make_engine(self.cfg, model_dir)
        self.weights = make_weight_source(learner)
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.actor = None
        self.sync()  # a late replica starts on the newest version
        self._follower = threading.Thread(target=self._follow, name="weights", daemon=True)
        self._follower.start()
        if redis_url and reward:
            from relayrl.replay import make_queue
            from relayrl.reward.client import GrpcRewardClient
            from relayrl.rollout.actor import Actor

            self.actor = Actor(self.cfg, f"ray-{self.replica_id}", self.engine, make_queue(self.cfg.queue, redis_url),
                               self.weights, GrpcRewardClient(reward))
            self.actor.lock = self.lock
            threading.Thread(target=self.actor.run, name="actor-loop", daemon=True).start()

    def sync(self) -> bool:
        """Load the learner's newest version if it is newer than the one served."""
        import grpc

        try:
            latest = self.weights.latest_version()
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:  # the learner has published nothing yet
                return False
            raise
        if latest <= self.engine.version:
            return False
        version, state, _epoch = self.weights.fetch(-1)  # replicas compare versions only (no epochs yet)
        with self.lock:
            self.engine.load_weights(state, version)
        log.info("replica %s loaded version %d", self.replica_id, version)
        return True

    def _follow(self) -> None:
        import grpc

        from relayrl.retry import TransientError

        while not self.stop.wait(self.cfg.rollout.ray.poll_s):
            try:
                self.sync()
            except (grpc.RpcError, OSError, TransientError) as exc:  # fault-tolerance boundary: the learner restarting
                log.warning("replica %s: weight poll failed: %s", self.replica_id, exc)

    def status(self) -> dict:
        return {"replica": self.replica_id, "version": self.engine.version,
                "groups_generated": self.actor.groups_generated if self.actor else 0}

    def generate(self, req: dict) -> dict:
        """{"prompt", "n", "max_new_tokens", "temperature", "top_k", "top_p", "seed"} -> samples."""
        problems = check_request(req)
        if problems:
            raise ValueError("; ".join(problems))
        base = self.cfg.rollout.sampling
        sampling = SamplingConfig(group_size=max(req.get("n", 1), 2),
                                  max_new_tokens=req.get("max_new_tokens") or base.max_new_tokens,
                                  temperature=req.get("temperature") or base.temperature,
                                  top_k=req.get("top_k", 0), top_p=req.get("top_p") or 1.0)
        with self.lock:
            group = self.engine.generate([req["prompt"]], sampling, seed=req.get("seed"))[0]
        return {"replica": self.replica_id, "version": self.engine.version,
                "samples": [{"token_ids": c.token_ids, "logprobs": c.logprobs, "versions": c.versions,
                             "text": c.text, "finish_reason": c.finish_reason}
                            for c in group[:req.get("n", 1)]]}

    async def __call__(self, request) -> dict:
        """HTTP: POST a generate request as JSON; a bad one answers 400 with what was wrong."""
        from starlette.responses import JSONResponse

        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        problems = check_request(body) if isinstance(body, dict) else ["body must be a JSON object"]
        if problems:
            return JSONResponse({"error": "; ".join(problems)}, status_code=400)
        return self.generate(body)

    def __del__(self) -> None:
        self.stop.set()
        if self.actor is not None:
            self.actor.stop.set()


def build_app(cfg: RunConfig, model_dir: str, learner: str, redis_url: str | None = None,
              reward: str | None = None):
    """The Ray Serve application: `RolloutReplica` with the autoscaling of `rollout.ray`."""
    from ray import serve

    rc = cfg.rollout.ray
    deployment = serve.deployment(
        RolloutReplica, name="rollout",
        autoscaling_config={"min_replicas": rc.min_replicas, "max_replicas": rc.max_replicas,
                            "initial_replicas": rc.min_replicas if rc.initial_replicas is None else rc.initial_replicas,
                            "target_ongoing_requests": rc.target_ongoing_requests},
        ray_actor_options={"num_cpus": rc.num_cpus, "num_gpus": rc.num_gpus})
    return deployment.bind(cfg.model_dump(mode="json"), str(model_dir), learner, redis_url, reward)


def main(config_path: str, model_dir: str, learner: str, redis_url: str | None, reward: str | None,
         address: str | None, http_port: int) -> None:
    """Entry of `relayrl serve rollout --ray`: connect to (or start) Ray, run the app until Ctrl-C."""
    import ray
    from ray import serve

    cfg = RunConfig.load(config_path)
    ray.init(address=address, include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    serve.run(build_app(cfg, model_dir, learner, redis_url, reward), name="relayrl-rollout", route_prefix="/generate",
              blocking=True)
