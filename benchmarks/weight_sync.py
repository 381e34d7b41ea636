"""Weight transfer: gRPC bandwidth against a raw socket, and time to bring N actors to a new version.

1. Bandwidth: one reader pulls a published version (a safetensors payload of `--mb` MB in the
   wire dtype) into memory (a) from the learner's real gRPC weight service (`WeightServicer` of
   `relayrl.weights.service`, chunked streaming) and (b) from a weight relay's bulk port
   (`bulk://`, what actors behind a relay read); the baseline sends the same bytes over a plain
   loopback TCP socket (`sendall` / `recv_into` a preallocated buffer, as the bulk reader reuses
   its buffer), in the same run, the three interleaved round by round; best of `--rounds` each.
2. Fan-out: 1, 2 and 4 actor processes, each pulling the new version and parsing it into tensors
   (what an actor does before `load_weights`), either all from the learner directly over gRPC or
   through one weight relay process (`relayrl serve relay --bulk-port`: one gRPC pull from the
   learner, re-served to the node's actors over `bulk://`). Reported: seconds from the
   announcement until every actor holds the version, and the learner's egress in payloads
   (direct: N; relay: one).

    .venv/bin/python benchmarks/weight_sync.py [--mb 64] [--wire-dtype bfloat16] [--rounds 7]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import threading
import time


def synthetic_state(mb: int) -> dict:
    """Transformer-like tensors totalling about `mb` MB in fp32."""
    import torch

    n = mb * 1024 * 1024 // 4
    g = torch.Generator().manual_seed(0)
    sizes, state, i = [4096 * 1024, 1024 * 1024, 256 * 1024], {}, 0
    while n > 0:
        k = min(sizes[i % 3], n)
        state[f"layers.{i}.weight"] = torch.randn(k, generator=g)
        n -= k
        i += 1
    return state


def start_learner(store, chunk_bytes: int):
    """The learner's weight service over `store`: (server, port, servicer counting bytes sent)."""
    from relayrl.weights.service import WeightServicer, serve

    servicer = WeightServicer(store, chunk_bytes)
    return (*serve(servicer, 0), servicer)


def socket_baseline(payload: bytes) -> float:
    """Seconds to move `payload` over a loopback TCP socket into a preallocated buffer."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def send():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(payload)

    threading.Thread(target=send, daemon=True).start()
    buf = bytearray(len(payload))
    view = memoryview(buf)
    t0 = time.perf_counter()
    with socket.create_connection(srv.getsockname()) as c:
        got = 0
        while got < len(buf):
            n = c.recv_into(view[got:], min(1 << 22, len(buf) - got))
            if n == 0:
                raise OSError("socket closed early")
            got += n
    dt = time.perf_counter() - t0
    srv.close()
    return dt


def grpc_pull(address: str) -> tuple[float, int]:
    from relayrl.rpc import channel
    from relayrl.weights.relay import pull_payload
    from relayrl.wire import learner_pb2_grpc

    with channel(address) as ch:
        stub = learner_pb2_grpc.LearnerServiceStub(ch)
        pull_payload(stub)  # connect and warm up
        t0 = time.perf_counter()
        item = pull_payload(stub)
        return time.perf_counter() - t0, len(item.payload)


def bandwidth_rounds(payload: bytes, learner_addr: str, rounds: int) -> tuple[float, float, float]:
    """Best seconds of (gRPC from the learner, bulk from a relay, raw socket), the three
    interleaved round by round so that a busy moment of the machine hits all of them alike."""
    from relayrl.weights.bulk import BulkWeightSource
    from relayrl.weights.relay import WeightRelay, serve_bulk

    relay = WeightRelay(learner_addr, poll_s=3600)
    bulk = serve_bulk(relay)
    src = BulkWeightSource(f"127.0.0.1:{bulk.port}")
    src.fetch_payload(-1)  # the relay pulls from the learner once; then every read is local
    g, b, s = [], [], []
    for _ in range(rounds):
        g.append(grpc_pull(learner_addr)[0])
        t0 = time.perf_counter()
        src.fetch_payload(-1)
        b.append(time.perf_counter() - t0)
        s.append(socket_baseline(payload))
    bulk.close()
    relay.close()
    return min(g), min(b), min(s)


def _actor(address: str, go, done) -> None:
    """An actor process: warm up on the current version, then pull the next one when told."""
    from relayrl.weights import make_weight_source

    src = make_weight_source(address)
    first = src.fetch(-1).version
    done.put(("ready", first, 0.0))
    go.wait()
    while True:
        version = src.fetch(-1).version
        if version > first:
            done.put(("done", version, time.perf_counter()))
            return
        time.sleep(0.01)


def _relay(upstream: str, port_q) -> None:
    from relayrl.weights.relay import WeightRelay, serve_bulk

    relay = WeightRelay(upstream, poll_s=0.05).start()
    port_q.put(serve_bulk(relay).port)
    threading.Event().wait()


def fan_out(store, servicer, learner_addr: str, n: int, via_relay: bool, state: dict, wire: str, version: int) -> dict:
    ctx = mp.get_context("spawn")
    procs = []
    address = learner_addr
    if via_relay:
        port_q = ctx.Queue()
        relay = ctx.Process(target=_relay, args=(learner_addr, port_q), daemon=True)
        relay.start()
        procs.append(relay)
        address = f"bulk://127.0.0.1:{port_q.get(timeout=60)}"
    go, done = ctx.Event(), ctx.Queue()
    actors = [ctx.Process(target=_actor, args=(address, go, done), daemon=True) for _ in range(n)]
    for p in actors:
        p.start()
    for _ in actors:
        assert done.get(timeout=120)[0] == "ready"
    sent_before = servicer.bytes_sent
    store.publish(version, state, wire)  # serialized before the clock starts: the learner did it already
    t0 = time.perf_counter()
    go.set()
    ends = [done.get(timeout=300)[2] for _ in actors]
    elapsed = max(ends) - t0
    for p in actors + procs:
        p.kill()
        p.join()
    return {"seconds": round(elapsed, 3), "learner_bytes": servicer.bytes_sent - sent_before}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=64, help="fp32 size of the synthetic model, MB")
    ap.add_argument("--wire-dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--chunk-mb", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    from relayrl.weights.store import WeightStore

    state = synthetic_state(args.mb)
    store = WeightStore(keep=2)
    payload = store.publish(1, state, args.wire_dtype).payload
    server, port, servicer = start_learner(store, int(args.chunk_mb * 1024 * 1024))
    addr = f"127.0.0.1:{port}"
    grpc_s, bulk_s, sock_s = bandwidth_rounds(payload, addr, args.rounds)
    mb = len(payload) / 1e6
    result = {"benchmark": "weight_sync", "payload_mb": round(mb, 1), "wire_dtype": args.wire_dtype,
              "chunk_mb": args.chunk_mb, "socket_mb_per_s": round(mb / sock_s, 1),
              "bulk_mb_per_s": round(mb / bulk_s, 1), "grpc_mb_per_s": round(mb / grpc_s, 1),
              "bandwidth_ratio": round(sock_s / bulk_s, 3), "grpc_bandwidth_ratio": round(sock_s / grpc_s, 3)}
    version = 1
    for mode in ("direct", "relay"):
        for n in (1, 2, 4):
            version += 1
            r = fan_out(store, servicer, addr, n, mode == "relay", state, args.wire_dtype, version)
            result[f"{mode}_{n}_s"] = r["seconds"]
            result[f"{mode}_{n}_learner_payloads"] = round(r["learner_bytes"] / len(store.get().payload), 2)
    server.stop(grace=0)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
