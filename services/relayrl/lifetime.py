"""Processes that die with the process they serve, however it dies (SIGKILL and OOM included).

Two ways, for two kinds of children:

- `die_with_parent`: PR_SET_PDEATHSIG, for a child the launcher starts itself (a `preexec_fn`):
  the kernel signals the child when its parent exits.
- `die_with(pid)`: for a process whose parent is not the one it serves. A multiprocessing
  forkserver's workers are children of the forkserver, and the forkserver outlives a killed
  service (each worker holds the pipe whose end of file would stop it), so the workers, the
  forkserver and the resource tracker would all stay behind under init. A worker watching the
  service's pid exits with it; then nothing holds those pipes and the rest exit on their own.

Linux only (prctl, pidfd_open); where pidfd_open is missing (old kernels, some sandboxes) the
watch polls the pid every second instead.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """`sig` is delivered to this process when its parent exits (a `preexec_fn`: set before exec,
    kept across it)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def die_with(pid: int) -> None:
    """Exit this process (status 1, at once, whatever it is doing) when process `pid` exits; at
    once if it has already. A daemon thread waits on a pidfd of `pid`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except OSError:  # no pidfd_open here: poll instead
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has exited
        else:
            while _alive(pid):
                time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name=f"die-with-{pid}", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True
