"""Where the gateway's figures come from: the run's Redis and the services' gRPC status.

Redis is the source of truth for queues, the published version, the paused flag and recent
rewards (the scored-groups stream holds each group's scores). The services' `GetStatus` RPCs add
their counters; a service that does not answer within the deadline is reported unavailable
rather than failing the request, because the control plane must keep answering while a service
restarts. Redis being unreachable is an error (the caller answers 503).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import grpc

from relayrl.gateway.settings import GatewaySettings
from relayrl.replay.keys import StreamKeys
from relayrl.replay.redis_queue import RedisReplayQueue
from relayrl.rpc import channel
from relayrl.wire import common_pb2, learner_pb2, learner_pb2_grpc, reward_pb2, reward_pb2_grpc, rollout_pb2, rollout_pb2_grpc

# The consumer group that reads each stream (docs/design.md); the dead-letter stream has none.
STREAM_GROUPS = {"prompts": StreamKeys.ACTORS, "groups": StreamKeys.LEARNER, "swe": StreamKeys.REWARD_WORKERS,
                 "dead": None}
OUTCOMES = {common_pb2.OUTCOME_PASS: "pass", common_pb2.OUTCOME_FAIL: "fail",
            common_pb2.OUTCOME_INFRA_ERROR: "infra_error"}


class RunState:
    """Reads (and pauses) one run; thread-safe (redis-py pools connections, gRPC channels are)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.keys = StreamKeys(settings.run)
        self.queue = RedisReplayQueue(settings.redis_url, timeout_s=5)
        self._channels: dict[str, grpc.Channel] = {}

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self.queue.close()

    # -- Redis ----------------------------------------------------------------------------------
    def ping(self) -> None:
        self.queue.ping()

    def paused(self) -> bool:
        return self.queue.get_value(self.keys.paused) == "1"

    def set_paused(self, paused: bool) -> None:
        if paused:
            self.queue.set_value(self.keys.paused, "1")
        else:
            self.queue.delete_value(self.keys.paused)

    def published_version(self) -> int | None:
        value = self.queue.get_value(self.keys.version)
        return None if value is None else int(value)

    def queues(self) -> dict[str, dict]:
        """Per stream: entries in it, waiting (not yet delivered to its group), leased (pending)."""
        out = {}
        for name, group in STREAM_GROUPS.items():
            key = getattr(self.keys, name)
            length = self.queue.length(key)  # 0 for a stream that does not exist yet
            info = self.queue.group_info(key, group) if group is not None else None
            out[name] = {"stream": key, "consumer_group": group, "length": length,
                         "waiting": info.waiting if info else length, "leased": info.pending if info else 0,
                         "consumers": info.consumers if info else 0}
        return out

    def actor_consumers(self) -> list[dict]:
        """The actors as Redis sees them: consumers of the prompts stream, with leases and idle time."""
        return [{"name": c.name, "leased": c.pending, "idle_ms": round(c.idle_s * 1000)}
                for c in self.queue.consumers(self.keys.prompts, StreamKeys.ACTORS)]

    def reward_stats(self, window: int) -> dict:
        """Statistics of the scores of the `window` most recently scored groups, overall and by kind."""
        payloads = self.queue.recent(self.keys.groups, window)
        by_kind: dict[str, list[float]] = defaultdict(list)
        outcomes: dict[str, dict[str, int]] = defaultdict(lambda: {"pass": 0, "fail": 0, "infra_error": 0})
        for payload in payloads:
            group = common_pb2.Group.FromString(payload)
            kind = group.prompt.kind or "unknown"
            for score in group.scores:
                outcomes[kind][OUTCOMES.get(score.outcome, "infra_error")] += 1
                if score.outcome != common_pb2.OUTCOME_INFRA_ERROR:
                    by_kind[kind].append(score.reward)
        kinds = {kind: {**_summary(by_kind.get(kind, [])), **counts} for kind, counts in sorted(outcomes.items())}
        every = [r for rs in by_kind.values() for r in rs]
        return {"groups": len(payloads), **_summary(every), "kinds": kinds}

    def finished_run(self) -> dict | None:
        """A finished local run's summary (and the learner's final status) from its directory;
        None while the run directory is unknown or holds no summary."""
        run_dir = self.settings.run_dir
        if run_dir is None or not (run_dir / "summary.json").exists():
            return None
        status = run_dir / "learner-status.json"
        return {"path": str(run_dir / "summary.json"), "summary": json.loads((run_dir / "summary.json").read_text()),
                "learner": json.loads(status.read_text()) if status.exists() else {}}

    # -- gRPC -----------------------------------------------------------------------------------
    def _channel(self, address: str) -> grpc.Channel:
        if address not in self._channels:
            token = self.settings.auth_token
            # the services require the run's token on every call (rpc.py); the gateway holds the same one
            self._channels[address] = channel(address, token.get_secret_value() if token else None)
        return self._channels[address]

    def _call(self, address: str | None, stub_cls, method: str, request):
        """A status RPC, or None when the service is not configured or does not answer."""
        if address is None:
            return None
        try:
            return getattr(stub_cls(self._channel(address)), method)(request, timeout=self.settings.rpc_timeout_s)
        except grpc.RpcError:  # fault-tolerance boundary: a restarting service is "unavailable"
            return None

    def learner_status(self) -> dict | None:
        s = self._call(self.settings.learner, learner_pb2_grpc.LearnerServiceStub, "GetStatus",
                       learner_pb2.LearnerStatusRequest())
        if s is None:
            return None
        return {"version": s.version, "step": s.step, "groups_trained": s.groups_trained,
                "groups_dropped_stale": s.groups_dropped_stale, "prompts_admitted": s.prompts_admitted,
                "last_reward_mean": s.last_reward_mean, "done": s.done}

    def reward_status(self) -> dict | None:
        s = self._call(self.settings.reward, reward_pb2_grpc.RewardServiceStub, "GetStatus",
                       reward_pb2.RewardStatusRequest())
        if s is None:
            return None
        return {"groups_in_flight": s.groups_in_flight, "groups_scored": s.groups_scored,
                "samples_scored": s.samples_scored, "kinds": list(s.kinds)}

    def actor_statuses(self) -> list[dict]:
        out = []
        for address in self.settings.actors:
            s = self._call(address, rollout_pb2_grpc.RolloutServiceStub, "GetStatus", rollout_pb2.RolloutStatusRequest())
            out.append({"address": address, "available": s is not None, "actor_id": s.actor_id if s else None,
                        "version": s.version if s else None, "groups_generated": s.groups_generated if s else None,
                        "tokens_generated": s.tokens_generated if s else None})
        return out


def _summary(values: list[float]) -> dict:
    if not values:
        return {"samples": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"samples": len(values), "mean": mean, "std": std, "min": min(values), "max": max(values)}
