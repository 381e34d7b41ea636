"""The verdict pipe between a trusted harness inside the sandbox and its verifier, and whose fault
a missing or broken verdict is.

A harness (`inside/harness.py` for code, `swe/harness.py` for SWE) writes JSON lines to a pipe
only it holds: `{"event": "untrusted"}` just before anything the response controls can first run
(a program, a patched repository's code), then one final verdict object. Only the response's own
processes share the sandbox with the harness, so once that line is written, a harness that dies
without a verdict, or reports its own failure, was made to by the response: the sample fails.
Before it, such a failure is the harness's or the data's: an infrastructure error.

The one exception: a harness killed by SIGKILL that neither the service (`kill_reason`) nor the
job's memory limit sent. Under bubblewrap the response cannot signal its harness (pid 1 of the
job's pid namespace receives, from inside it, only signals it handles), so that is an operator or
the host's OOM killer: an infrastructure error.
"""

from __future__ import annotations

import json
import signal

from relayrl.reward.sandbox_job import SandboxResult

UNTRUSTED = {"event": "untrusted"}
"""The line a harness writes before the response's code can run."""


def read_verdict(data: bytes) -> tuple[bool, dict | None]:
    """(whether the harness said untrusted code was about to run, its final verdict or None)."""
    untrusted, verdict = False, None
    for line in data.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a line cut off by the harness's death
        if message == UNTRUSTED:
            untrusted = True
        elif isinstance(message, dict):
            verdict = message
    return untrusted, verdict


def killed_from_outside(result: SandboxResult) -> bool:
    """The harness died of a SIGKILL the service did not send and the memory limit did not cause.
    bwrap reports a child's signal as 128 + the signal; without bwrap it is the negative signal."""
    return result.kill_reason is None and result.exit_code in (128 + signal.SIGKILL, -signal.SIGKILL)


def responses_fault(result: SandboxResult, untrusted: bool) -> bool:
    """Whether a job that gave no usable verdict failed because of the response (see above)."""
    return bool(result.kill_reason) or (untrusted and not killed_from_outside(result))
