"""Actors spread their calls over every reward server their target resolves to (relayrl.rpc:
round-robin, the chart's headless reward Service), and a server that comes up later gets its
share without the client being restarted (an autoscaled pod).

Two real reward servers on one port, on 127.0.0.1 and 127.0.0.2, stand in for two pods behind a
headless Service; the target lists both addresses ("ipv4:" is gRPC's static resolver: the same
address list a `dns:///` target gets from the Service's records). What DNS itself does is not run
here (no name with several records on this machine); docs/deploying.md says so.
"""

from __future__ import annotations

import socket
import time

import pytest

from relayrl.config import RewardConfig
from relayrl.replay import RedisReplayQueue
from relayrl.reward.client import GrpcRewardClient
from relayrl.reward.server import serve
from relayrl.rpc import CLIENT_OPTIONS, SERVER_OPTIONS

CFG = RewardConfig(workers=1, timeout_s=5.0)
HOSTS = ("127.0.0.1", "127.0.0.2")


def free_port_on_both() -> int:
    for _ in range(20):
        sockets = []
        try:
            first = socket.socket()
            first.bind((HOSTS[0], 0))
            sockets.append(first)
            port = first.getsockname()[1]
            second = socket.socket()
            sockets.append(second)
            second.bind((HOSTS[1], port))
            return port
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    pytest.fail("no port free on both loopback addresses")


def scored(servers) -> list[int]:
    """Score calls each server answered (counted by its own service)."""
    return [s.service.score_calls for s in servers]


@pytest.fixture
def counting(monkeypatch):
    """Count Score calls per service, by wrapping the real method."""
    from relayrl.reward.service import RewardService

    original = RewardService.score

    def score(self, *args):
        self.score_calls = getattr(self, "score_calls", 0) + 1
        return original(self, *args)

    monkeypatch.setattr(RewardService, "score", score)


def test_channels_round_robin_and_servers_age_their_connections():
    assert ("grpc.lb_policy_name", "round_robin") in CLIENT_OPTIONS
    assert dict(SERVER_OPTIONS)["grpc.max_connection_age_ms"] > 0


def test_calls_spread_over_every_reward_server(redis_url, counting):
    port = free_port_on_both()
    queue = RedisReplayQueue(redis_url)
    servers = [serve(CFG, queue, "lb", port=port, host=host) for host in HOSTS]
    for s in servers:
        s.service.score_calls = 0
    client = GrpcRewardClient(f"ipv4:{HOSTS[0]}:{port},{HOSTS[1]}:{port}")
    try:
        for _ in range(40):
            assert client.score("math", "\\boxed{5}", "5").outcome == "pass"
        first, second = scored(servers)
        assert first + second == 40 and min(first, second) >= 15, (first, second)
    finally:
        client.close()
        for s in servers:
            s.stop(grace=0.5)
        queue.close()


def test_a_server_started_later_gets_calls_from_a_running_client(redis_url, counting):
    port = free_port_on_both()
    queue = RedisReplayQueue(redis_url)
    servers = [serve(CFG, queue, "lb", port=port, host=HOSTS[0])]
    servers[0].service.score_calls = 0
    client = GrpcRewardClient(f"ipv4:{HOSTS[0]}:{port},{HOSTS[1]}:{port}")
    try:
        for _ in range(10):  # the second address refuses connections: every call goes to the first
            assert client.score("math", "\\boxed{5}", "5").outcome == "pass"
        assert scored(servers) == [10]
        servers.append(serve(CFG, queue, "lb", port=port, host=HOSTS[1]))
        servers[1].service.score_calls = 0
        deadline = time.monotonic() + 30  # gRPC reconnects with backoff (1 s, then x1.6)
        while servers[1].service.score_calls == 0 and time.monotonic() < deadline:
            client.score("math", "\\boxed{5}", "5")
            time.sleep(0.05)
        assert servers[1].service.score_calls > 0, scored(servers)
    finally:
        client.close()
        for s in servers:
            s.stop(grace=0.5)
        queue.close()
