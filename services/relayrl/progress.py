"""Live progress of a run for the terminal: step, reward, version and queue depths (rich).

The monitor polls the learner's `GetStatus` RPC and the streams' lag in Redis; it never blocks
the launcher for long (short deadlines), and a peer that is still starting simply shows blanks.
It draws on stderr (the launcher enables it only when stderr is a terminal), so stdout carries
the run's JSON summary alone and `relayrl train ... | jq` works.
"""

from __future__ import annotations

import grpc
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from relayrl.replay.keys import StreamKeys
from relayrl.replay.redis_queue import RedisReplayQueue
from relayrl.rpc import channel
from relayrl.wire import learner_pb2, learner_pb2_grpc


class RunMonitor:
    def __init__(self, redis_url: str, learner_addr: str, keys: StreamKeys, steps: int, enabled: bool = True) -> None:
        self.keys, self.steps, self.enabled = keys, steps, enabled
        self.queue = RedisReplayQueue(redis_url, timeout_s=1)
        self.channel = channel(learner_addr)
        self.stub = learner_pb2_grpc.LearnerServiceStub(self.channel)
        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=not enabled,
                                 console=Console(stderr=True))
        self.task = self.progress.add_task("train", total=steps, info="starting")

    def __enter__(self) -> RunMonitor:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()
        self.channel.close()
        self.queue.close()

    def _lag(self, stream: str, group: str) -> str:
        try:
            info = self.queue.group_info(stream, group)
        except redis.RedisError:  # a display: Redis restarting shows a blank, it does not stop the run
            return "-"
        return "-" if info is None else str(info.waiting)

    def update(self) -> None:
        if not self.enabled:
            return
        try:
            s = self.stub.GetStatus(learner_pb2.LearnerStatusRequest(), timeout=0.5)
        except grpc.RpcError:
            return
        prompts, groups = self._lag(self.keys.prompts, StreamKeys.ACTORS), self._lag(self.keys.groups, StreamKeys.LEARNER)
        info = (f"reward {s.last_reward_mean:.3f}  version {s.version}  prompts queued {prompts}"
                f"  groups queued {groups}  dropped stale {s.groups_dropped_stale}")
        self.progress.update(self.task, completed=s.step, info=info)
