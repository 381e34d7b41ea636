"""Code scoring through the real reward service over gRPC: attacks do not stop it serving, a
saturated lane answers RESOURCE_EXHAUSTED, per-kind health tells whether code is served, and the
language-consistency reward composes with accuracy by weight."""

from __future__ import annotations

import json
import shutil
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relayrl.config import CodeConfig, LaneConfig, LanesConfig, RewardConfig, RewardWeights
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.reward.client import GrpcRewardClient
from relayrl.reward.errors import Saturated
from relayrl.reward.server import SERVICE_NAME, serve
from relayrl.wire import common_pb2, reward_pb2, reward_pb2_grpc

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")
RUN = "code"
SPEC = json.dumps({"kind": "stdio", "timeout_s": 2, "cases": [{"stdin": "4", "stdout": "8"}]})


def test_attacks_over_grpc_leave_the_service_serving():
    server = serve(RewardConfig(code=CodeConfig(concurrency=2)), MemoryReplayQueue(), RUN, port=0)
    client = GrpcRewardClient(server.address)
    try:
        for attack in ("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n",
                       "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\n",
                       "x = []\nwhile True: x.append(bytearray(64 << 20))\n"):
            assert client.score("code", attack, SPEC).outcome == "fail"
        assert client.score("code", "print(int(input()) * 2)", SPEC).outcome == "pass"
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", SERVICE_NAME, f"{SERVICE_NAME}/code", f"{SERVICE_NAME}/math"):
                assert health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == \
                    health_pb2.HealthCheckResponse.SERVING
    finally:
        client.close()
        server.stop(grace=1.0)


def test_a_bad_reference_is_invalid_argument_at_once():
    """The data's fault, not the model's or the infrastructure's: refused when the request
    arrives (INVALID_ARGUMENT naming what is wrong), never scored infra_error after 3 attempts."""
    queue = MemoryReplayQueue()
    server = serve(RewardConfig(code=CodeConfig(concurrency=1)), queue, RUN, port=0)
    client = GrpcRewardClient(server.address)
    try:
        started = time.monotonic()
        with pytest.raises(ValueError, match="bad code reference: test spec is not JSON"):
            client.score("code", "print(8)", "not a spec")
        prompt = common_pb2.Prompt(prompt_id="bad", text="double it", kind="code", reference='{"kind": "stdio"}')
        group = common_pb2.Group(group_id="bad", prompt=prompt, samples=[common_pb2.Sample(sample_id="bad/0", text="x")])
        with pytest.raises(ValueError, match="group 'bad': bad code reference: .*non-empty list of cases"):
            client.submit(group)
        assert time.monotonic() - started < 5
        with grpc.insecure_channel(server.address) as channel:  # the status code itself, as any client sees it
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.SubmitGroup(reward_pb2.SubmitGroupRequest(group=group), timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "non-empty list of cases" in refused.value.details()
        assert server.service.status().groups_in_flight == 0  # nothing was accepted
        with pytest.raises(ValueError, match="max_reference_chars"):
            client.score("math", "\\boxed{1}", "1" * 200_000)
        assert client.score("code", "print(8)", SPEC).outcome == "pass"
    finally:
        client.close()
        server.stop(grace=1.0)


def test_a_saturated_lane_answers_resource_exhausted_and_math_still_flows():
    queue = MemoryReplayQueue()
    queue.ensure_group(StreamKeys(RUN).groups, StreamKeys.LEARNER)
    cfg = RewardConfig(code=CodeConfig(concurrency=1), lanes=LanesConfig(code=LaneConfig(workers=1, max_pending=2)))
    server = serve(cfg, queue, RUN, port=0)
    client = GrpcRewardClient(server.address)
    slow = "import time\ntime.sleep(1.5)\nprint(8)"
    try:
        prompt = common_pb2.Prompt(prompt_id="c1", text="double it", kind="code", reference=SPEC)
        group = common_pb2.Group(group_id="c1", prompt=prompt,
                                 samples=[common_pb2.Sample(sample_id=f"c1/{i}", text=slow + "#" * i) for i in range(2)])
        assert client.submit(group) is True
        with pytest.raises(Saturated, match="lanes.code.max_pending=2"):
            client.score("code", "print(8)", SPEC)
        assert client.score("math", "\\boxed{5}", "5").outcome == "pass"  # another lane is unaffected
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            entries = queue.lease(StreamKeys(RUN).groups, StreamKeys.LEARNER, "l1", 1, block_s=0.2)
            if entries:
                break
        scored = common_pb2.Group.FromString(entries[0].payload)
        assert [s.outcome for s in scored.scores] == [common_pb2.OUTCOME_PASS] * 2
        assert client.score("code", "print(8)", SPEC).outcome == "pass"  # room again
    finally:
        client.close()
        server.stop(grace=1.0)


def test_language_reward_composes_with_accuracy_by_weight():
    queue = MemoryReplayQueue()
    queue.ensure_group(StreamKeys(RUN).groups, StreamKeys.LEARNER)
    cfg = RewardConfig(weights=RewardWeights(accuracy=1.0, format=0.0, language=0.5))
    server = serve(cfg, queue, RUN, port=0)
    client = GrpcRewardClient(server.address)
    try:
        prompt = common_pb2.Prompt(prompt_id="m1", text="What is 2+3?", kind="math", reference="5")
        texts = ["<think>add them</think><answer>5</answer>", "<think>把它们 add</think><answer>5</answer>",
                 "<think>相加</think><answer>6</answer>"]
        group = common_pb2.Group(group_id="m1", prompt=prompt,
                                 samples=[common_pb2.Sample(sample_id=f"m1/{i}", text=t) for i, t in enumerate(texts)])
        assert client.submit(group) is True
        deadline = time.monotonic() + 20
        while not (entries := queue.lease(StreamKeys(RUN).groups, StreamKeys.LEARNER, "l1", 1, block_s=0.2)):
            assert time.monotonic() < deadline
        scored = common_pb2.Group.FromString(entries[0].payload)
        assert [s.reward for s in scored.scores] == [1.5, 1.25, 0.0]
        assert [s.components["language"] for s in scored.scores] == [1.0, 0.5, 0.0]
    finally:
        client.close()
        server.stop(grace=1.0)
