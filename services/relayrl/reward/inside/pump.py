"""Feed a process its stdin while reading its output pipes, each up to a cap, until a deadline.

One loop for both sides of the sandbox: the trusted judge inside (`harness.py`, a stdio test case's
program) and the service outside (`sandbox_job.communicate`, the whole job). Writing and reading
at once is what keeps a program that fills its stdout pipe before reading its stdin (or the
reverse) from deadlocking its judge. Stdlib only: the sandbox's interpreter imports it too.
"""

import os
import select
import time

CHUNK = 65536


def pump(stdin, data, read_fds, deadline, cap):
    """Write `data` to the binary file `stdin`, closing it once all is written (or the reader is
    gone), while reading every fd of `read_fds` until end of file; stop early at `deadline`
    (`time.monotonic()`) or once one fd gave more than `cap` bytes.

    Returns ({fd: bytearray}, reason): reason is None (every fd reached end of file), "timeout"
    or "output". The caller kills what it started on a reason and closes `stdin` (again) itself.
    """
    bufs = {fd: bytearray() for fd in read_fds}
    poll = select.poll()
    for fd in bufs:
        os.set_blocking(fd, False)
        poll.register(fd, select.POLLIN)
    pending, stdin_fd = memoryview(data), stdin.fileno()
    if pending:
        os.set_blocking(stdin_fd, False)
        poll.register(stdin_fd, select.POLLOUT)
    else:
        stdin.close()
    open_reads = len(bufs)
    while open_reads:
        left = deadline - time.monotonic()
        if left <= 0:
            return bufs, "timeout"
        for fd, _ in poll.poll(left * 1000):
            if fd == stdin_fd:
                try:
                    pending = pending[os.write(fd, pending[:CHUNK]):]
                except BrokenPipeError:
                    pending = pending[:0]
                if not pending:
                    poll.unregister(fd)
                    stdin.close()
                continue
            chunk = os.read(fd, CHUNK)
            if not chunk:
                poll.unregister(fd)
                open_reads -= 1
                continue
            bufs[fd] += chunk
            if len(bufs[fd]) > cap:
                return bufs, "output"
    return bufs, None
