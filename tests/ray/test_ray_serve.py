"""The rollout fleet on a local Ray cluster: two Ray Serve replicas follow a weight update.

Real Ray (a local cluster started by the test), real Ray Serve replicas with the transformers
engine on the tiny model, and a real gRPC weight server speaking the learner's protocol.
"""

import time

import pytest
import torch

from relayrl.config import RayConfig, RolloutConfig, RunConfig, SamplingConfig
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights.store import WeightStore

pytestmark = pytest.mark.ray

PROMPT = "31353?"


@pytest.fixture
def weight_server():
    from relayrl.weights.service import WeightServicer, serve

    store = WeightStore(keep=2)
    server, port = serve(WeightServicer(store, 1 << 16), 0)
    yield store, f"127.0.0.1:{port}"
    server.stop(grace=0)


@pytest.fixture
def ray_cluster():
    ray = pytest.importorskip("ray")  # CI installs it first (scripts/setup.sh --ray)
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield serve
    serve.shutdown()
    ray.shutdown()


def new_policy(model_dir) -> dict:
    from transformers import AutoModelForCausalLM

    state = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    gen = torch.Generator().manual_seed(7)
    return {k: v + 2.0 * v.std() * torch.randn(v.shape, generator=gen) for k, v in state.items()}


def test_two_replicas_load_an_update_and_both_generate_with_it(tiny_model_dir, weight_server, ray_cluster):
    from relayrl.rollout.ray_serve import build_app

    serve = ray_cluster
    store, address = weight_server
    cfg = RunConfig(rollout=RolloutConfig(ray=RayConfig(min_replicas=2, max_replicas=2, num_cpus=0.5, poll_s=0.2)))
    handle = serve.run(build_app(cfg, str(tiny_model_dir), address), name="rollout-test", route_prefix=None)

    def ask(n_calls=16):
        return [handle.generate.remote({"prompt": PROMPT, "n": 2, "max_new_tokens": 8, "top_k": 1})
                for _ in range(n_calls)]

    first = [r.result() for r in ask()]
    assert {r["version"] for r in first} == {0}  # nothing published yet: the weights on disk

    state = new_policy(tiny_model_dir)
    store.publish(1, state, "float32")
    reference = TransformersEngine(str(tiny_model_dir))
    reference.load_weights(state, version=1)
    expected = reference.generate([PROMPT], SamplingConfig(group_size=2, max_new_tokens=8, top_k=1))[0][0].token_ids
    assert expected != first[0]["samples"][0]["token_ids"]  # the update changes greedy output

    seen: dict[str, list] = {}
    deadline = time.monotonic() + 120
    while len(seen) < 2 and time.monotonic() < deadline:
        for r in (x.result() for x in ask()):
            if r["version"] == 1:
                seen[r["replica"]] = r["samples"]
        time.sleep(0.2)
    assert len(seen) == 2, f"replicas serving version 1: {list(seen)}"
    for samples in seen.values():
        assert samples[0]["versions"] == [1] * len(samples[0]["token_ids"])
        assert samples[0]["token_ids"] == expected

    with pytest.raises(Exception, match="prompt must be a non-empty string"):
        handle.generate.remote({"prompt": "", "n": 1}).result()
