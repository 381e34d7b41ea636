"""How actors reach the reward service: the `RewardClient` boundary, in process or over gRPC.

Both implementations behave the same: `submit` returns False for a duplicate group, raises
ValueError for a malformed one and `Saturated` when the service has too many groups in flight
(back off and retry), `Closed` when it is shutting down (both from `relayrl.reward.errors`).
`score` returns a `verifiers.base.Score`. The gRPC client maps status codes back onto those
exceptions, so a caller never needs to know which one it holds.

The in-process client wraps any `ScoringService` (a structural type that
`relayrl.reward.service.RewardService` satisfies) rather than importing the service: the service
never imports this module, nor this module the service, so neither depends on the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import grpc

from relayrl.reward.errors import Closed, Saturated
from relayrl.reward.verifiers.base import Score
from relayrl.rpc import channel
from relayrl.wire import common_pb2, reward_pb2, reward_pb2_grpc


class ScoringService(Protocol):
    """What the in-process client calls: `relayrl.reward.service.RewardService`'s API."""

    def submit(self, group: common_pb2.Group) -> bool: ...

    def score(self, kind: str, response: str, reference: str) -> Score: ...

    def status(self) -> reward_pb2.RewardStatus: ...


class RewardClient(ABC):
    """Submits generated groups for scoring."""

    @abstractmethod
    def submit(self, group: common_pb2.Group) -> bool:
        """Hand a group over; False when the service already has this group id."""

    @abstractmethod
    def score(self, kind: str, response: str, reference: str) -> Score:
        """Score one response synchronously."""

    @abstractmethod
    def status(self) -> reward_pb2.RewardStatus:
        """Groups in flight and scored so far, and the kinds the service scores."""

    def close(self) -> None:
        """Release the connection."""


class InProcessRewardClient(RewardClient):
    """Calls a `RewardService` in this process (unit tests, single-process runs)."""

    def __init__(self, service: ScoringService) -> None:
        self.service = service

    def submit(self, group: common_pb2.Group) -> bool:
        return self.service.submit(group)

    def score(self, kind: str, response: str, reference: str) -> Score:
        return self.service.score(kind, response, reference)

    def status(self) -> reward_pb2.RewardStatus:
        return self.service.status()


class GrpcRewardClient(RewardClient):
    """Calls the reward service at `address` ("host:port") over an insecure gRPC channel."""

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._channel = channel(address)
        self._stub = reward_pb2_grpc.RewardServiceStub(self._channel)

    def submit(self, group: common_pb2.Group) -> bool:
        request = reward_pb2.SubmitGroupRequest(group=group)
        return self._call(self._stub.SubmitGroup, request).accepted

    def score(self, kind: str, response: str, reference: str) -> Score:
        request = reward_pb2.ScoreRequest(kind=kind, response=response, reference=reference)
        return Score.from_proto(self._call(self._stub.Score, request).score)

    def status(self) -> reward_pb2.RewardStatus:
        return self._call(self._stub.GetStatus, reward_pb2.RewardStatusRequest())

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise ValueError(exc.details()) from exc
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise Saturated(exc.details()) from exc
            if code == grpc.StatusCode.UNAVAILABLE and exc.details() and "shutting down" in exc.details():
                raise Closed(exc.details()) from exc
            raise
