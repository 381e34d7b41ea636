"""The broadcast fast path's protocol and bookkeeping, over gloo pair groups on this CPU.

The same code runs with NCCL on GPUs (the backend is the only difference, chosen by the server);
NCCL itself cannot run here. Real sockets, real TCPStore rendezvous, real gloo process groups; the
actors are `NcclWeightSource`s in threads of this process (a pair group each), and one engine
loads what it received."""

import socket
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM

from relayrl.config import SamplingConfig
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights import IncompleteWeights, VersionUnavailable, make_weight_source
from relayrl.weights.nccl import NcclWeightServer, NcclWeightSource
from relayrl.weights.store import WeightStore


@pytest.fixture
def served(tiny_model_dir):
    store = WeightStore(keep=2, epoch="lineage-1")  # the epoch travels with every version
    server = NcclWeightServer(store, backend="gloo", timeout_s=10, token="t0ken")
    yield store, server, f"nccl://127.0.0.1:{server.port}"
    server.close()


def _states(model_dir, n):
    """`n` versions of the tiny model's weights (the tied head travels under the embeddings' name)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return [{name: t + 0.01 * k for name, t in model.state_dict().items() if name != "lm_head.weight"}
            for k in range(n)]


def test_an_actor_pulls_each_version_bit_exact_and_loads_it(served, tiny_model_dir):
    store, server, address = served
    states = _states(tiny_model_dir, 2)
    source = make_weight_source(address)
    assert isinstance(source, NcclWeightSource)
    source.token = "t0ken"
    assert source.latest_version() == -1
    with pytest.raises(VersionUnavailable):
        source.fetch(-1)
    for version, state in enumerate(states):
        store.publish(version, state, "float32")
        got, received, epoch = source.fetch(-1)
        assert got == version and set(received) == set(state) and epoch == "lineage-1"
        for name, tensor in received.items():
            assert torch.equal(tensor, state[name]), name
    assert source.bytes_received == server.bytes_sent == 2 * sum(t.numel() * 4 for t in received.values())
    assert server.transfers == 2 and server.sessions == 1  # one session, one pair group, reused
    engine = TransformersEngine(str(tiny_model_dir))
    engine.load_weights(received, got)
    reference = TransformersEngine(str(tiny_model_dir))
    reference.load_weights(states[1], 1)
    greedy = SamplingConfig(group_size=2, max_new_tokens=6, top_k=1)
    assert ([c.token_ids for g in engine.generate(["12?", "555?"], greedy) for c in g]
            == [c.token_ids for g in reference.generate(["12?", "555?"], greedy) for c in g])
    source.close()


def test_a_late_actor_gets_the_newest_version_while_the_others_keep_their_sessions(served, tiny_model_dir):
    store, server, address = served
    states = _states(tiny_model_dir, 3)
    early = NcclWeightSource(address, token="t0ken")
    store.publish(0, states[0], "bfloat16")
    assert early.fetch(-1)[0] == 0
    store.publish(1, states[1], "bfloat16")
    store.publish(2, states[2], "bfloat16")
    late = NcclWeightSource(address, token="t0ken")
    results = {}
    threads = [threading.Thread(target=lambda s=s, k=k: results.__setitem__(k, s.fetch(-1)))
               for k, s in (("early", early), ("late", late))]
    for t in threads:  # both at once: each pair group is its own
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results["early"][0] == results["late"][0] == 2
    for name, tensor in results["late"][1].items():
        assert tensor.dtype == torch.bfloat16 and torch.equal(tensor, states[2][name].to(torch.bfloat16)), name
    assert server.sessions == 2 and server.transfers == 3
    with pytest.raises(VersionUnavailable):
        late.fetch(0)  # evicted (the store keeps 2)
    early.close()
    late.close()


def test_bad_peers_end_only_their_own_session(served, tiny_model_dir):
    store, server, address = served
    store.publish(0, _states(tiny_model_dir, 1)[0], "float32")
    with pytest.raises(PermissionError):  # a wrong token is configuration, not a transient failure
        NcclWeightSource(address, token="wrong").fetch(-1)
    for garbage in (b"not json\n", b"[1, 2]\n", b'{"op": "fetch"}\n', b"\xff" * 100 + b"\n"):
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(garbage)
            assert raw.recv(100) == b""  # the server closed this session
    # a peer that joins and vanishes before the rendezvous: its session times out alone
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(b'{"op": "join", "token": "t0ken"}\n')
        assert b"port" in raw.recv(200)
    good = NcclWeightSource(address, token="t0ken")
    assert good.fetch(-1)[0] == 0  # the server still serves
    good.close()


def test_a_transfer_cut_short_is_a_transient_error_and_the_next_fetch_reopens(served, tiny_model_dir):
    store, server, address = served
    store.publish(0, _states(tiny_model_dir, 1)[0], "float32")
    source = NcclWeightSource(address, token="t0ken", timeout_s=5)
    assert source.fetch(-1)[0] == 0
    server.close()  # the learner goes away: the open session's socket stays, the server does not answer
    source._session[0].shutdown(socket.SHUT_RDWR)
    with pytest.raises(IncompleteWeights):
        source.fetch(-1)
    assert source._session is None  # reopened on the next call
