"""A job's process limit counts the job's processes only, not every process of its host uid.

In a pod the service runs as a uid it shares with its own threads and with other pods (the chart
runs every relayrl pod as 10001), and RLIMIT_NPROC set on bubblewrap capped that uid's count on
the host: the chart's reward pod scored an honest program `fail` ("the zygote could not fork")
and others `infra_error` ("bwrap: Creating new namespace failed"). Here the job's uid is made
busy the same way (more sleeping processes than the job's limit), and an honest program must
still pass while a fork bomb is still contained. Real sandbox, real uid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from relayrl.config import CodeConfig, RewardConfig, SandboxConfig
from relayrl.reward.verifiers.code import CodeVerifier

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing: scripts/setup.sh installs it"),
    pytest.mark.skipif(os.geteuid() != 0, reason="makes another uid busy: needs root"),
]

UID = 2_700_000 + (os.getpid() % 10_000)  # one uid of this test's own: every job runs as it
LIMIT = 32


def stdio(stdin: str, expected: str) -> str:
    return json.dumps({"kind": "stdio", "cases": [{"stdin": stdin, "stdout": expected}], "timeout_s": 5})


@pytest.fixture
def busy_uid():
    """More processes of the job's uid than the job may have, none of them the job's."""
    sleepers = [subprocess.Popen(["/usr/bin/setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
                                  "/usr/bin/sleep", "300"]) for _ in range(2 * LIMIT)]
    yield
    for p in sleepers:
        p.kill()
        p.wait()


def test_a_busy_uid_does_not_keep_honest_jobs_from_forking_and_bombs_stay_contained(busy_uid):
    cfg = RewardConfig(sandbox=SandboxConfig(uid_base=UID, uid_count=1, max_processes=LIMIT),
                       code=CodeConfig(concurrency=1, prespawn=False, cache_size=0))
    verifier = CodeVerifier(cfg)
    try:
        honest = verifier.score("```python\nprint(int(input()) * 2)\n```", stdio("21", "42"))
        assert honest.outcome == "pass", honest.details
        bomb = textwrap.dedent("""
            import os
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
            """)
        contained = verifier.score(f"```python\n{bomb}\n```", stdio("", "done"))
        assert contained.outcome == "fail", contained.details
        again = verifier.score("```python\nprint(int(input()) + 1)\n```", stdio("41", "42"))
        assert again.outcome == "pass", again.details
    finally:
        verifier.close()
