"""An actor's whole weight path: from the learner's published bytes to tensors loaded in the engine.

`weight_sync.py` times the bytes; what an actor waits for is more: pull the version, parse it into
tensors, and load them into its engine (here the transformers engine: a cast to fp32 and a copy
into every parameter). For each path an actor process (its own process, as in production) pulls
a version and loads it, `--rounds` times, the paths interleaved round by round:

- **grpc**: `GrpcWeightSource` from the learner's real gRPC weight service;
- **bulk**: `BulkWeightSource` from a weight relay's bulk port (the relay pulls once over gRPC);
- **pair (gloo)**: `NcclWeightSource` from the learner's broadcast server over a gloo pair group —
  the NCCL fast path's code with the CPU backend (NCCL itself needs GPUs);
- **baseline**: the same payload already in the actor's memory, parsed and loaded: no transport.

Reported per path: seconds to fetch (bytes to tensors), to load, and in all (medians), and the
whole path's share that is transport. The model is a random Qwen2 built here (`--hidden`,
`--layers`) or any Hugging Face directory (`--model`).

    .venv/bin/python benchmarks/weight_load.py [--model DIR] [--wire-dtype bfloat16] [--rounds 5]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path


def _actor(kind: str, address: str, model_dir: str, commands, results) -> None:
    """An actor process: on each command pull the newest version over `kind` and load it."""
    import torch

    from relayrl.rollout.engine import TransformersEngine
    from relayrl.weights import make_weight_source
    from relayrl.weights.store import deserialize

    torch.set_num_threads(1)
    engine = TransformersEngine(model_dir)
    if kind == "baseline":
        payload = Path(address).read_bytes()
        fetch = lambda: (1, deserialize(payload), "")  # noqa: E731
    else:
        fetch = make_weight_source(address).fetch
    results.put("ready")
    while commands.get() is not None:
        t0 = time.perf_counter()
        version, state, _ = fetch()
        t1 = time.perf_counter()
        engine.load_weights(state, version)
        results.put((t1 - t0, time.perf_counter() - t1, sum(t.numel() * t.element_size() for t in state.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--wire-dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from relayrl.config import TinyModelConfig
    from relayrl.weights.nccl import NcclWeightServer
    from relayrl.weights.relay import WeightRelay, serve_bulk
    from relayrl.weights.service import WeightServicer, serve
    from relayrl.weights.store import WeightStore

    tmp = Path(tempfile.mkdtemp(prefix="relayrl-weight-load-"))
    model_dir = args.model
    if model_dir is None:
        from relayrl.model.tiny import init_tiny

        model_dir = init_tiny(tmp / "model", TinyModelConfig(hidden_size=args.hidden, num_layers=args.layers,
                                                              num_heads=args.hidden // 64,
                                                              intermediate_size=4 * args.hidden))
    state = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    store = WeightStore(keep=1)
    item = store.publish(1, state, args.wire_dtype)
    (tmp / "payload").write_bytes(bytes(item.payload))
    grpc_server, grpc_port = serve(WeightServicer(store, 4 * 1024 * 1024), 0)
    relay = WeightRelay(f"127.0.0.1:{grpc_port}", poll_s=3600)
    bulk = serve_bulk(relay)
    pair = NcclWeightServer(store, backend="gloo")
    addresses = {"grpc": f"127.0.0.1:{grpc_port}", "bulk": f"bulk://127.0.0.1:{bulk.port}",
                 "pair_gloo": f"nccl://127.0.0.1:{pair.port}", "baseline": str(tmp / "payload")}
    ctx = mp.get_context("spawn")
    actors = {}
    for kind, address in addresses.items():
        commands, results = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=_actor, args=(kind, address, str(model_dir), commands, results), daemon=True)
        proc.start()
        actors[kind] = (proc, commands, results)
    for _, _, results in actors.values():
        assert results.get(timeout=600) == "ready"
    times: dict[str, list] = {kind: [] for kind in actors}
    for _ in range(args.rounds + 1):  # the first round warms every path up and is not counted
        for kind, (_, commands, results) in actors.items():
            commands.put(True)
            times[kind].append(results.get(timeout=600))
    for proc, commands, _ in actors.values():
        commands.put(None)
        proc.join(timeout=30)
    grpc_server.stop(0)
    bulk.close()
    relay.close()
    pair.close()
    out = {"benchmark": "weight_load", "params_m": round(sum(t.numel() for t in state.values()) / 1e6, 1),
           "payload_mb": round(len(item.payload) / 1e6, 1), "wire_dtype": args.wire_dtype, "rounds": args.rounds,
           "engine": "transformers (fp32)"}
    for kind, rounds in times.items():
        fetch, load = (statistics.median(r[i] for r in rounds[1:]) for i in (0, 1))
        out.update({f"{kind}_fetch_s": round(fetch, 4), f"{kind}_load_s": round(load, 4),
                    f"{kind}_whole_s": round(fetch + load, 4)})
    base = out["baseline_whole_s"]
    for kind in ("grpc", "bulk", "pair_gloo"):
        out[f"{kind}_transport_share"] = round(max(out[f"{kind}_whole_s"] - base, 0.0) / out[f"{kind}_whole_s"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
