"""math-verify in worker processes, with deadlines that say whose fault a slow answer is.

Why processes: math-verify's own timeouts use `signal.alarm`, which only works in a main thread,
and sympy can spin in C (a big-integer power) where no Python-level timeout reaches it. Each
worker is a process of its own (from a `forkserver` with math-verify preloaded, never forked from
a threaded gRPC process) serving one verification at a time over a pipe, so the parent always
knows which worker ran what, and a worker that dies or hangs takes down nothing else.

Whose fault, decided without guessing from wall time alone:

- the worker parses the gold answer first (cached per worker) and says so before it touches the
  model's answer, so every cost after that message is the answer's;
- each verification gets `cpu_s` CPU seconds, measured by the parent from the worker's CPU time
  in /proc every 50 ms (and enforced by the worker's RLIMIT_CPU, raised to that much, rounded up,
  above what it has used: a computation stuck in C dies of SIGXCPU): CPU time, not wall time,
  so a loaded host slows a check down but does not change its verdict;
- an answer that spends the budget, or runs out of the worker's address space (RLIMIT_AS
  `memory_mb` above its size at start: `MemoryError`), is `expensive`: the sample fails;
- the same during the gold phase, a gold answer that does not parse, a worker killed by anything
  else (SIGKILL from the OOM killer or an operator), or one that made no CPU progress for
  `timeout_s` of wall time (stopped, or starved by a host so loaded it never runs; also any check
  still running after 10 x `timeout_s`): `infra`, retried.

Results come back as JSON, never pickle. A worker that failed in any way is replaced.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import queue
import signal
import time
from dataclasses import dataclass, field

from relayrl.reward.verifiers.math_exact import exact_equal, exact_mismatch

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    """What a worker said about (prediction, gold)."""

    kind: str
    """"result" (ok is set), "expensive" (the answer's fault) or "infra"."""
    ok: bool = False
    info: dict = field(default_factory=dict)
    reason: str = ""


def _cpu_seconds(pid: int) -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def gold_of(gold: str):
    """The gold answer parsed by math-verify (in a worker, its own timeouts off), or None when
    it does not parse: a data error, not the model's."""
    from math_verify import parse

    parsed = parse(gold if ("\\boxed" in gold or "$" in gold) else f"\\boxed{{{gold}}}", parsing_timeout=None)
    return parsed or None


def verify_answer(gold_parsed, prediction: str) -> tuple[bool, dict]:
    """Parse the model's answer and compare it with the parsed gold (in a worker)."""
    from math_verify import parse, verify

    pred_parsed = parse(prediction, parsing_timeout=None)
    info = {"parsed": str(pred_parsed[0])[:200] if pred_parsed else None, "gold_parsed": str(gold_parsed[0])[:200]}
    if not pred_parsed:
        return False, info
    if (exact := exact_equal(gold_parsed[0], pred_parsed[0])) is not None:  # two exact numbers: no simplify
        return exact, info
    ok = verify(gold_parsed, pred_parsed, timeout_seconds=None)
    if ok and exact_mismatch(gold_parsed[0], pred_parsed[0]):
        ok, info["reason"] = False, "exact values differ (math-verify's numeric tolerance called them equal)"
    return ok, info


def _worker(conn, cpu_s: float, memory_mb: int, service_pid: int) -> None:
    import logging
    import resource

    from relayrl.lifetime import die_with

    die_with(service_pid)  # a killed service takes its workers (and so the forkserver) with it
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    verify_answer(gold_of("1"), "\\boxed{1}")  # warm math-verify's caches before the first deadline
    size = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + (memory_mb << 20), resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    golds: dict[str, object] = {}
    conn.send_bytes(b'["ready"]')
    while True:
        try:
            prediction, gold = json.loads(conn.recv_bytes())
        except EOFError:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_s)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
        try:
            if gold not in golds:
                golds[gold] = gold_of(gold)
                while len(golds) > 256:
                    golds.pop(next(iter(golds)))
        except MemoryError:
            conn.send_bytes(b'["infra", "the gold answer exhausts the memory budget", false]')
            os._exit(0)
        if golds[gold] is None:
            conn.send_bytes(json.dumps(["infra", "gold answer does not parse: " + gold[:200], True]).encode())
            continue
        conn.send_bytes(b'["gold"]')
        try:
            ok, info = verify_answer(golds[gold], prediction)
        except MemoryError:
            conn.send_bytes(b'["expensive", "the answer exhausts the memory budget", false]')
            os._exit(0)  # whatever sympy left half-built goes with this process
        except Exception as exc:  # RecursionError and sympy's own failures on a strange answer
            ok, info = False, {"reason": f"the answer does not verify: {type(exc).__name__}"}
        conn.send_bytes(json.dumps(["result", ok, info]).encode())


class _Worker:
    def __init__(self, ctx, cpu_s: float, memory_mb: int) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, cpu_s, memory_mb, os.getpid()), daemon=True)
        self.proc.start()
        child.close()
        try:
            ready = self.conn.poll(120) and json.loads(self.conn.recv_bytes()) == ["ready"]
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise RuntimeError(f"a math-verify worker did not start (exit code {self.proc.exitcode})")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class MathWorkers:
    """`count` worker processes; `verify` is thread-safe and blocks for a free worker."""

    def __init__(self, count: int, timeout_s: float, cpu_s: float, memory_mb: int) -> None:
        self.timeout_s, self.cpu_s, self.memory_mb = timeout_s, cpu_s, memory_mb
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["math_verify", "relayrl.reward.verifiers.math_workers"])
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._closed = False
        for _ in range(count):
            self._put(self._start())

    def _start(self) -> _Worker:
        worker = _Worker(self._ctx, self.cpu_s, self.memory_mb)
        self._all.add(worker)
        return worker

    def _put(self, worker: _Worker | None) -> None:
        self._idle.put(worker)

    def verify(self, prediction: str, gold: str) -> Outcome:
        worker = self._idle.get()
        if self._closed:
            self._put(worker)
            raise RuntimeError("MathWorkers is closed")
        healthy = False
        try:
            if worker is None:  # a slot whose last worker failed: start its replacement here
                worker = self._start()
            outcome, healthy = self._ask(worker, prediction, gold)
            return outcome
        finally:
            if not healthy and worker is not None:
                worker.kill()
                self._all.discard(worker)
                worker = None
            self._put(worker)

    def _ask(self, worker: _Worker, prediction: str, gold: str) -> tuple[Outcome, bool]:
        pid, now = worker.proc.pid, time.monotonic()
        started, phase, cpu_mark = now, "gold", _cpu_seconds(pid)
        answer_cpu = progress_at = None
        progress_cpu, progress_at = cpu_mark, now
        try:
            worker.conn.send_bytes(json.dumps([prediction, gold]).encode())
            while True:
                if worker.conn.poll(0.05):
                    message = json.loads(worker.conn.recv_bytes())
                    if message[0] == "gold":
                        phase, answer_cpu = "answer", _cpu_seconds(pid)
                        continue
                    if message[0] == "result":
                        return Outcome("result", bool(message[1]), message[2]), True
                    # "expensive" or "infra" said by the worker itself, and whether it lives on
                    return Outcome(message[0], reason=message[1]), bool(message[2])
                now, cpu = time.monotonic(), _cpu_seconds(pid)
                if cpu - cpu_mark >= self.cpu_s:
                    if phase == "answer":
                        return Outcome("expensive", reason=f"checking the answer used {cpu - answer_cpu:.1f} "
                                                           f"CPU s (budget {self.cpu_s})"), False
                    return Outcome("infra", reason=f"the gold answer used the {self.cpu_s} CPU s budget"), False
                if cpu >= progress_cpu + 0.02:
                    progress_cpu, progress_at = cpu, now
                if now - progress_at >= self.timeout_s or now - started >= 10 * self.timeout_s:
                    return Outcome("infra", reason=f"verification exceeded {self.timeout_s}s without CPU progress "
                                                   f"({cpu - cpu_mark:.2f} CPU s in {now - started:.1f} s, {phase} "
                                                   "phase): the worker was stopped or starved"), False
        except (EOFError, OSError):
            worker.proc.join(5)
            code = worker.proc.exitcode
            if phase == "answer" and code == -signal.SIGXCPU:
                return Outcome("expensive", reason=f"checking the answer used its {self.cpu_s} CPU s"), False
            return Outcome("infra", reason=f"verifier worker died (exit code {code}) in the {phase} phase"), False

    def pids(self) -> list[int]:
        """The live workers' process ids (tests stop or kill them as a host would)."""
        return [w.proc.pid for w in list(self._all) if w.proc.is_alive()]

    def close(self) -> None:
        self._closed = True
        for worker in list(self._all):
            worker.kill()
        self._all.clear()
