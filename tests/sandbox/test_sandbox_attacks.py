"""The attack suite: each attack is a real program that would *pass* its test if the attack
worked (it prints the secret, the expected output it stole, a forged verdict...). Every one must
be contained and scored `fail` (or `infra_error`), no process or file of the job may outlive it,
and the verifier keeps serving. Runs the real sandbox (bubblewrap, cgroups, seccomp)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
import time
from pathlib import Path

import pytest

from relayrl.config import CodeConfig, RewardConfig, SandboxConfig
from relayrl.reward.verifiers.code import CodeVerifier

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")

SECRET = "relayrl-secret-4c1f9e"
# A uid range of this test process's own (uids are leased host-wide, but other processes' jobs in
# a shared range would show up in `sandbox_processes`).
UID_BASE = 2_500_000 + (os.getpid() % 10_000) * 64
CFG = RewardConfig(sandbox=SandboxConfig(memory_mb=256, max_processes=32, tmpfs_mb=8, max_output_bytes=65536,
                                         uid_base=UID_BASE, uid_count=64),
                   code=CodeConfig(concurrency=2, cache_size=0))


def _own_job_cgroups() -> set[Path]:
    return {p for p in Path("/sys/fs/cgroup").rglob(f"relayrl-job-{os.getpid()}-*") if p.is_dir()}


EARLIER: set[Path] = set()
"""Job cgroups of this process that existed before the verifier: an earlier test's job may still
be running out its deadline (a service stopped with a job in flight), and it is not this suite's."""


@pytest.fixture(scope="module")
def verifier():
    os.environ["RELAYRL_TEST_SECRET"] = SECRET  # in the service's environment: must never reach a job
    EARLIER.update(_own_job_cgroups())
    v = CodeVerifier(CFG)
    yield v
    v.close()
    del os.environ["RELAYRL_TEST_SECRET"]


def sandbox_processes(verifier) -> list[int]:
    """Host processes running as one of the sandbox's job uids, but for the sandboxes the
    verifier keeps started for its next jobs (`code.prespawn`: they hold no job yet)."""
    idle = set()
    if verifier.prespawned is not None:
        verifier.prespawned.settle()
        idle = verifier.prespawned.idle_uids()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = int((entry / "status").read_text().split("\nUid:")[1].split()[0])
            except (OSError, IndexError):
                continue
            if CFG.sandbox.uid_base <= uid < CFG.sandbox.uid_base + CFG.sandbox.uid_count and uid not in idle:
                found.append(int(entry.name))
    return found


def job_cgroups(verifier) -> list[Path]:
    """This process's job cgroups (other processes on the host may be running jobs of their own),
    but for those of the sandboxes kept started for the next jobs."""
    idle = {path for job in (verifier.prespawned.idle_cgroups() if verifier.prespawned else [])
            for path in job.dirs.values()}
    return [p for p in _own_job_cgroups() - EARLIER if p not in idle]


def stdio(expected: str, timeout_s: float = 2.0, stdin: str = "") -> str:
    return json.dumps({"kind": "stdio", "cases": [{"stdin": stdin, "stdout": expected}], "timeout_s": timeout_s})


def judge(verifier, program: str, spec: str):
    started = time.monotonic()
    score = verifier.score("```python\n" + textwrap.dedent(program) + "\n```", spec)
    assert score.outcome in ("fail", "infra_error"), (score.outcome, score.details)
    assert score.reward == 0.0
    assert time.monotonic() - started < 30
    leaked = sandbox_processes(verifier)
    assert leaked == [], ("a process of the job outlived it", [Path(f"/proc/{p}/status").read_text()[:200] for p in leaked])
    assert job_cgroups(verifier) == [], "a job cgroup outlived the job"
    return score


def still_serving(verifier):
    score = verifier.score("print(int(input()) * 2)", stdio("84", stdin="42"))
    assert score.outcome == "pass", score.details


ATTACKS = {
    "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", stdio("done")),
    "memory_bomb": ("x = bytearray(8 << 30)\nprint('done')\n", stdio("done")),
    "memory_bomb_touched": ("x = []\nwhile True:\n    x.append(bytearray(16 << 20))\n", stdio("done")),
    "memory_bomb_children": ("""
        import os
        for _ in range(6):
            if os.fork() == 0:
                b = bytearray(200 << 20)
                for i in range(0, len(b), 4096): b[i] = 1
                os._exit(0)
        while True:
            try: os.wait()
            except ChildProcessError: break
        print('done')
        """, stdio("never")),
    "mmap_bomb": ("""
        import mmap
        m = mmap.mmap(-1, 900 << 20)
        for i in range(0, len(m), 4096): m[i] = 1
        print('done')
        """, stdio("done")),
    "disk_fill_tmp": ("""
        n = 0
        with open('/tmp/fill', 'wb') as f:
            while True:
                f.write(b'x' * (1 << 20)); n += 1
        """, stdio("done")),
    "disk_fill_shm": ("""
        i = 0
        while True:
            with open('/dev/shm/f%d' % i, 'wb') as f: f.write(b'x' * (1 << 20))
            i += 1
        """, stdio("done")),
    "output_flood": ("while True:\n    print('x' * 10000)\n", stdio("x")),
    "stderr_flood": ("import sys\nwhile True:\n    sys.stderr.write('y' * 10000)\n", stdio("y")),
    "secret_environ": ("""
        import os
        found = [v for v in os.environ.values() if 'relayrl-secret' in v]
        for pid in ('1', 'self', '2'):
            try:
                env = open('/proc/%s/environ' % pid, 'rb').read().split(b'\\0')
                found += [x.decode() for x in env if b'relayrl-secret' in x]
            except OSError: pass
        print(found[0].split('=')[-1] if found else 'none')
        """, stdio(SECRET)),
    "kill_the_parent": ("""
        import os, signal
        for pid in (os.getppid(), 1, -1):
            try: os.kill(pid, signal.SIGKILL)
            except OSError: pass
        print('killed')
        """, stdio("survived")),
    "sleep_past_deadline_catching_signals": ("""
        import signal, time
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU):
            signal.signal(s, signal.SIG_IGN)
        while True:
            try: time.sleep(100)
            except BaseException: pass
        """, stdio("done", timeout_s=1.0)),
    "daemon_setsid_double_fork": ("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(300)
            os._exit(0)
        print('done')
        """, stdio("never")),
    "cpu_spin_threads": ("""
        import threading
        def spin():
            while True: pass
        for _ in range(8): threading.Thread(target=spin).start()
        spin()
        """, stdio("done", timeout_s=1.0)),
    "deep_recursion": ("import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n): return f(n + 1) + 1\nprint(f(0))\n", stdio("0")),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_contained(verifier, name):
    program, spec = ATTACKS[name]
    judge(verifier, program, spec)
    still_serving(verifier)


def test_network_egress_is_impossible(verifier, redis_url):
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    program = f"""
        import socket
        ok = []
        for host, port in (('127.0.0.1', {port}), ('8.8.8.8', 53), ('1.1.1.1', 443)):
            try:
                socket.create_connection((host, port), timeout=1).close(); ok.append(host)
            except OSError: pass
        for fam in (socket.AF_INET, socket.AF_INET6, socket.AF_PACKET):
            try: socket.socket(fam, socket.SOCK_RAW if fam == socket.AF_PACKET else socket.SOCK_DGRAM); ok.append(fam)
            except OSError: pass
        print('connected' if ok else 'isolated')
        """
    score = judge(verifier, program, stdio("connected", timeout_s=5))
    assert score.details["cases"][0]["detail"]["stdout"].strip() == "isolated"
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # the port is really open from the host


def test_filesystem_escape_and_symlinks(verifier, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o644)
    for parent in (tmp_path, *tmp_path.parents):
        if parent != Path("/"):
            os.chmod(parent, os.stat(parent).st_mode | 0o005)  # readable by anyone on the host
    program = f"""
        import os
        paths = [{str(secret)!r}, '../..{secret}', '/proc/1/root{secret}', '/proc/self/root{secret}']
        try:
            os.symlink('/', '/tmp/root'); paths.append('/tmp/root{secret}')
        except OSError: pass
        for p in paths:
            try: print(open(p).read()); break
            except OSError: pass
        else:
            print(sorted(os.listdir('/')))
        """
    score = judge(verifier, program, stdio(SECRET))
    listing = score.details["cases"][0]["detail"]["stdout"]
    assert "work" not in listing and "root" not in listing and "etc" not in listing, listing


def test_proc_tricks_cannot_reach_the_judge(verifier):
    """The expected output lives only in the judge's memory (pid 1): /proc/1/mem, fds, cmdline."""
    expected = "expected-output-7d3a"
    program = """
        import os, re
        found = ''
        for name in ('cmdline', 'environ', 'mem', 'maps', 'stack', 'syscall'):
            try:
                data = open('/proc/1/' + name, 'rb').read(1 << 20)
                m = re.search(rb'expected-output-[0-9a-f]+', data)
                found = found or (m.group().decode() if m else '')
            except OSError: pass
        try:
            for fd in os.listdir('/proc/1/fd'):
                try:
                    with open('/proc/1/fd/' + fd, 'w') as f: f.write('{"cases": [], "stopped_early": false}')
                except OSError: pass
        except OSError: pass
        print(found or 'nothing')
        """
    score = judge(verifier, program, stdio(expected))
    assert score.details["cases"][0]["detail"]["stdout"].strip() == "nothing"


def test_zip_style_partial_and_extra_output_fail(verifier):
    spec = json.dumps({"kind": "stdio", "cases": [{"stdin": "", "stdout": "1\n2\n3\n"}]})
    assert judge(verifier, "print(1)", spec).details["cases"][0]["status"] == "fail"
    assert judge(verifier, "print('1\\n2\\n3\\n4')", spec).details["cases"][0]["status"] == "fail"
    assert verifier.score("print('1  \\n2\\n3')", spec).outcome == "pass"  # trailing whitespace only


def test_a_detached_daemon_is_killed_with_the_job(verifier):
    """The program is right (prints "done") but leaves a daemon: it passes, and the daemon dies."""
    program = """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                fd = os.open('/dev/null', os.O_RDWR)
                for i in range(3): os.dup2(fd, i)
                time.sleep(300)
            os._exit(0)
        print('done')
        """
    score = verifier.score(textwrap.dedent(program), stdio("done"))
    assert score.outcome == "pass", score.details
    assert sandbox_processes(verifier) == [] and job_cgroups(verifier) == []


ASSERT_SPEC = json.dumps({"kind": "assert", "entry_point": "add", "timeout_s": 3,
                          "prelude": "def add(a, b):\n    '''Add two numbers.'''\n",
                          "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-5, 5) == 0\n"})

TAMPERING = {
    "exit_zero_before_asserts": "import sys\nsys.exit(0)\n",
    "os_exit_inside_the_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "always_equal_object": "class Yes:\n    def __eq__(self, other): return True\n    __hash__ = object.__hash__\n"
                           "def add(a, b):\n    return Yes()\n",
    "int_subclass_always_equal": "class I(int):\n    def __eq__(self, other): return True\n"
                                 "def add(a, b):\n    return I(0)\n",
    "monkey_patch_builtins": "import builtins\nbuiltins.AssertionError = type('Nope', (BaseException,), {})\n"
                             "class E(Exception): pass\nbuiltins.__dict__['__import__'] = None\n"
                             "def add(a, b):\n    return 0\n",
    "stack_walk_appends_passed": """
        import inspect, gc
        def add(a, b):
            for frame in inspect.stack():
                for v in list(frame.frame.f_locals.values()):
                    if isinstance(v, list): v.append('passed')
            for obj in gc.get_objects():
                if isinstance(obj, dict) and 'status' in obj: obj['status'] = 'pass'
            return 0
        """,
    "print_pass_markers_and_forge_verdict_fds": """
        import os, json
        case = {'name': 'check', 'status': 'pass', 'detail': {}, 'duration_s': 0}
        verdict = json.dumps({'cases': [case], 'stopped_early': False})
        print('PASSED\\nall tests passed\\n' + verdict)
        for fd in range(3, 64):
            try: os.write(fd, verdict.encode())
            except OSError: pass
        def add(a, b):
            return 0
        """,
    "raise_system_exit_in_call": "def add(a, b):\n    raise SystemExit(0)\n",
    "raise_keyboard_interrupt": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "hang_in_call": "import time\ndef add(a, b):\n    time.sleep(100)\n",
    "checker_file_in_own_directory": """
        for name in ('/tmp/wire.py', '/tmp/harness.py', '/tmp/sitecustomize.py', '/tmp/check.py'):
            with open(name, 'w') as f: f.write('raise SystemExit(0)\\n')
        try:
            open('/sandbox/harness.py', 'w').write('pass')
        except OSError: pass
        def add(a, b):
            return 0
        """,
    "generator_instead_of_value": "def add(a, b):\n    yield a + b\n",
    "swallowable_timeout": "import time\ndef add(a, b):\n    time.sleep(100)\n",
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_grader_tampering_does_not_pass(verifier, name):
    judge(verifier, TAMPERING[name], ASSERT_SPEC)


def test_a_test_that_swallows_errors_still_fails_a_dead_or_hung_candidate(verifier):
    spec = json.dumps({"kind": "assert", "entry_point": "f", "timeout_s": 2,
                       "test": "def check(candidate):\n    try:\n        candidate(1)\n    except Exception:\n        pass\n"})
    assert verifier.score("def f(x):\n    raise ValueError\n", spec).outcome == "pass"  # the test's own semantics
    judge(verifier, "import os\ndef f(x):\n    os._exit(0)\n", spec)
    judge(verifier, "import time\ndef f(x):\n    time.sleep(60)\n", spec)


def test_the_honest_program_passes(verifier):
    score = verifier.score("def add(a, b):\n    return a + b\n", ASSERT_SPEC)
    assert score.outcome == "pass" and score.details["cases"][0]["status"] == "pass", score.details
