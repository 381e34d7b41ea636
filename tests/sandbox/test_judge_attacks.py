"""Attacks on the code judge itself, as a policy under RL would find them: each program would
escape its negative reward (an `infra_error` is retried and then left out of training) or be
paid for a wrong answer if its defence were missing. Every one must score `fail` with a verdict
from the judge, quickly, and leave the verifier serving. Runs the real sandbox.

Kind 1, a wrong answer turned into an infrastructure error: signal the judge (it runs as the
same uid), take its working directory away, fill the space it used to write into, make its
decoding of the candidate's replies slow or crash. Kind 2, trusted code steered by the
candidate's values: an exception the test's own loop obeys (StopIteration), a NaN every ordered
comparison is false for, a reply the judge's own decoding chokes on inside a test that treats
exceptions as an answer.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import time

import pytest

from relayrl.config import CodeConfig, RewardConfig, SandboxConfig
from relayrl.reward.verifiers.code import CodeVerifier

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it")

CFG = RewardConfig(sandbox=SandboxConfig(memory_mb=256, max_processes=32, tmpfs_mb=8, max_output_bytes=65536,
                                         uid_base=2_400_000 + (os.getpid() % 10_000) * 16, uid_count=16),
                   code=CodeConfig(concurrency=2, cache_size=0))


@pytest.fixture(scope="module")
def verifier():
    v = CodeVerifier(CFG)
    yield v
    v.close()


def two_cases(timeout_s: float = 2.0) -> str:
    """Case 1 expects "ok" (the attack passes it), case 2 something the attack never prints."""
    return json.dumps({"kind": "stdio", "timeout_s": timeout_s, "early_stop": False,
                       "cases": [{"stdin": "", "stdout": "ok"}, {"stdin": "", "stdout": "the right answer"}]})


def assert_spec(test: str, timeout_s: float = 2.0) -> str:
    return json.dumps({"kind": "assert", "entry_point": "f", "timeout_s": timeout_s, "test": textwrap.dedent(test)})


def forge_reply(message: str) -> str:
    """Program text that writes the JSON reply the Python expression `message` makes straight into
    every pipe it holds, where the checker reads the candidate's replies, then hangs instead of
    answering itself."""
    return f"""
        import json, os, struct, time
        def f(x):
            data = ({message}).encode()
            for fd in range(3, 64):
                try:
                    os.write(fd, struct.pack('>I', len(data)) + data)
                except OSError:
                    pass
            time.sleep(30)
        """


def judged(verifier, program: str, spec: str, within_s: float = 15.0):
    started = time.monotonic()
    score = verifier.score("```python\n" + textwrap.dedent(program) + "\n```", spec)
    elapsed = time.monotonic() - started
    assert score.outcome == "fail", (score.outcome, score.details)
    assert score.reward == 0.0
    assert isinstance(score.details.get("cases"), list), f"no verdict from the judge: {score.details}"
    assert elapsed < within_s, f"took {elapsed:.1f} s"
    honest = verifier.score("print('ok')", json.dumps({"kind": "stdio", "cases": [{"stdout": "ok"}]}))
    assert honest.outcome == "pass", honest.details
    return score


STDIO_ATTACKS = {
    "signal_the_judge": """
        import os, signal, time
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM, signal.SIGQUIT,
                  signal.SIGXCPU, signal.SIGSTOP, signal.SIGTSTP, signal.SIGPIPE, signal.SIGKILL):
            for pid in (1, os.getppid(), -1):
                try: os.kill(pid, s)
                except OSError: pass
        time.sleep(0.3)
        print('ok')
        """,
    "take_the_workdir_away": """
        import os
        print('ok', flush=True)
        os.chmod('/tmp', 0)
        """,
    "fill_the_workdir_for_good": """
        import os
        os.makedirs('/tmp/a', exist_ok=True)
        for name in os.listdir('/tmp'):  # whatever the judge wrote there, out of its reach
            if name != 'a':
                os.rename('/tmp/' + name, '/tmp/a/' + name)
        try:
            with open('/tmp/a/fill', 'wb') as f:
                while True: f.write(b'x' * 65536)
        except OSError: pass
        os.chmod('/tmp/a', 0o500)  # nothing in it can be deleted now
        print('ok')
        """,
    "a_tree_deeper_than_the_cleanup": """
        import os
        os.chdir('/tmp')
        for _ in range(3000):
            os.mkdir('d'); os.chdir('d')
        print('ok')
        """,
    **{f"{verb}_the_runner_between_cases": f"""
        import os, signal
        for pid in range(2, 200):
            if pid != os.getpid():
                try: os.kill(pid, signal.{sig})
                except OSError: pass
        print('ok')
        """ for verb, sig in (("kill", "SIGKILL"), ("stop", "SIGSTOP"))},
}


@pytest.mark.parametrize("name", sorted(STDIO_ATTACKS))
def test_breaking_the_stdio_judge_fails(verifier, name):
    score = judged(verifier, STDIO_ATTACKS[name], two_cases())
    assert score.details["cases"][-1]["status"] != "pass"


SWALLOWING_TEST = """
    def check(candidate):
        try:
            got = candidate(1)
        except Exception:
            got = 2  # the test reads an exception as "no answer", which happens to be right here
        assert got == 2
    """

ASSERT_ATTACKS = {
    "stop_iteration_ends_the_tests_loop": (
        "def f(x):\n    raise StopIteration\n",
        """
        def check(candidate):
            for got, want in zip(map(candidate, [1, 2, 3]), [2, 3, 4]):
                assert got == want
        """),
    "nan_makes_every_comparison_false": (
        "def f(x):\n    return float('nan')\n",
        """
        def check(candidate):
            assert not abs(candidate(1) - 0.5) > 1e-9
        """),
    "a_reply_int_past_the_conversion_limit": (
        forge_reply("json.dumps({'value': {'i': '9' * 5000}})"),
        SWALLOWING_TEST),
    "a_reply_nested_past_the_parser": (
        forge_reply("'{\"value\": ' + '{\"l\": [' * 50_000 + ']}' * 50_000 + '}'"),
        SWALLOWING_TEST),
    "a_malformed_exception_reply": (
        forge_reply("json.dumps({'raise': 5})"),
        SWALLOWING_TEST),
    "a_set_of_colliding_hashes": (
        forge_reply("json.dumps({'value': {'set': [{'i': str(i * (2 ** 61 - 1))} for i in range(1, 60_000)]}})"),
        """
        def check(candidate):
            assert candidate(1) == {1}
        """),
}


@pytest.mark.parametrize("name", sorted(ASSERT_ATTACKS))
def test_steering_the_assert_judge_fails(verifier, name):
    program, test = ASSERT_ATTACKS[name]
    judged(verifier, program, assert_spec(test), within_s=6.0)


def test_exceptions_keep_their_meaning_for_honest_tests(verifier):
    """Inert does not mean meaningless: a test that expects a ValueError still sees one."""
    spec = assert_spec("""
        def check(candidate):
            try:
                candidate(-1)
            except ValueError:
                pass
            else:
                raise AssertionError('no ValueError')
            assert candidate(4) == 2.0 and candidate(float('inf')) == float('inf')
        """)
    honest = "import math\ndef f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return math.sqrt(x)\n"
    assert verifier.score(honest, spec).outcome == "pass"
    assert verifier.score("def f(x):\n    return x ** 0.5\n", spec).outcome == "fail"  # no ValueError for -1
