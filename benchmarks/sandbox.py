"""Sandbox overhead and the speed of a whole code job: one `python3 -c pass` through the full
sandbox (bubblewrap namespaces, uid drop, rlimits, cgroups, seccomp) against the same bare spawn
measured in the same run; sandbox executions per second with one job slot per core; then what an
RL run pays per program: a one-case stdio job through `CodeVerifier` and the real judge (median
latency, one at a time) and whole jobs per second with one job slot per core (distinct programs,
the result cache off, two submitting threads per slot). `job_cpu_ms` is the CPU time of one job,
its sandbox processes included, which a machine shared with other work inflates less than wall
time; `load_avg_1m` is the machine's load when the run ended.

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


def jobs_per_s(verifier: CodeVerifier, spec: str, seconds: float, threads: int) -> tuple[float, float]:
    """(one-case stdio jobs per second, CPU ms per job) with `threads` submitting distinct programs."""
    count, stop = [0], time.monotonic() + seconds

    def work(offset: int) -> None:
        i = offset
        while time.monotonic() < stop:
            outcome = verifier.score(f"print(int(input()) * 2)  # {i}", spec).outcome
            assert outcome == "pass", outcome
            i += threads
            count[0] += 1

    runners = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    before, started = os.times(), time.monotonic()
    for r in runners:
        r.start()
    for r in runners:
        r.join()
    after, wall = os.times(), time.monotonic() - started
    cpu = sum(after[:4]) - sum(before[:4])  # this process and its reaped children (every sandbox process)
    return count[0] / wall, 1000 * cpu / max(count[0], 1)


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
    verifier = CodeVerifier(RewardConfig(code=CodeConfig(cache_size=0, concurrency=cores)))
    spec = json.dumps({"kind": "stdio", "cases": [{"stdin": "2", "stdout": "4"}]})
    verifier.score("print(int(input()) * 2)", spec)  # warm up
    job = median_ms(lambda: verifier.score("print(int(input()) * 2)", spec), max(5, args.n // 2))
    jobs, job_cpu = jobs_per_s(verifier, spec, args.seconds, 2 * cores)
    figures = {"bare_spawn_ms": round(bare, 2), "sandboxed_spawn_ms": round(sandboxed, 2),
               "overhead_ms": round(sandboxed - bare, 2), "sandbox_execs_per_s": round(rate, 1), "cores": cores,
               "stdio_job_one_case_ms": round(job, 2), "jobs_per_s": round(jobs, 1), "job_cpu_ms": round(job_cpu, 2),
               "load_avg_1m": round(os.getloadavg()[0], 2), "mode": sandbox.health()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
