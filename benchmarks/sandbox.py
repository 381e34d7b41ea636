"""Sandbox overhead: one `python3 -c pass` through the full sandbox (bubblewrap namespaces, uid
drop, rlimits, cgroups, seccomp) against the same bare spawn measured in the same run, then
sandbox executions per second with one job slot per core, and a one-case stdio code job.

    .venv/bin/python benchmarks/sandbox.py [--n 40] [--seconds 5]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time

from relayrl.config import CodeConfig, RewardConfig, SandboxConfig
from relayrl.reward.sandbox import Sandbox
from relayrl.reward.verifiers.code import CodeVerifier

ARGV = ["/usr/bin/python3", "-c", "pass"]


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sandbox = Sandbox(SandboxConfig())
    sandbox.run(ARGV)  # warm up (seccomp compile, page cache)
    bare = median_ms(lambda: subprocess.run(ARGV, check=True), args.n)
    sandboxed = median_ms(lambda: sandbox.run(ARGV), args.n)
    cores = os.cpu_count() or 1
    count, stop = [0], time.monotonic() + args.seconds

    def worker(slot: int) -> None:
        while time.monotonic() < stop:
            sandbox.run(ARGV)
            count[0] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(cores)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = count[0] / (time.monotonic() - started)
    verifier = CodeVerifier(RewardConfig(code=CodeConfig(cache_size=0)))
    spec = json.dumps({"kind": "stdio", "cases": [{"stdin": "2", "stdout": "4"}]})
    job = median_ms(lambda: verifier.score("print(int(input()) * 2)", spec), max(5, args.n // 4))
    figures = {"bare_spawn_ms": round(bare, 2), "sandboxed_spawn_ms": round(sandboxed, 2),
               "overhead_ms": round(sandboxed - bare, 2), "sandbox_execs_per_s": round(rate, 1), "cores": cores,
               "stdio_job_one_case_ms": round(job, 2), "mode": sandbox.health()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
