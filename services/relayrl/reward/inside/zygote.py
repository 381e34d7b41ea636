"""The candidate zygote: a clean interpreter that starts each test case's program by forking.

Starting a fresh `python3 -I` for every case costs an interpreter start-up (10-25 ms) per case.
Instead the judge forks this zygote first thing, before it reads the job (so the zygote's memory
never holds the expected outputs or anything else the program must not see); the zygote imports
`site` as `python3 -I` would, receives the program, and for each case forks a child that takes
the case's pipes (passed over a UNIX socket with SCM_RIGHTS), starts a new session and runs the
program as `__main__`, ending through the interpreter's normal exit (non-daemon threads joined,
atexit handlers run, buffers flushed). Assert cases run `candidate.serve` the same way.

The zygote is non-dumpable (inherited from the judge), so a program running as the same uid
cannot read or write its memory or descriptors through /proc; it can signal it. A dead or stopped
zygote only fails the program's own later cases (only the program could have done it).
"""

import _socket
import marshal
import os
import struct
import sys

_FD = struct.Struct("i")
MAIN_FILE = "/tmp/main.py"
_SOURCE = ""


class ZygoteGone(Exception):
    """The zygote died or stopped answering (only the program's processes can do that)."""


def _send(sock, message, fds=()):
    data = marshal.dumps(message)
    head = struct.pack(">I", len(data))
    anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(_FD.pack(fd) for fd in fds))] if fds else []
    sock.sendmsg([head], anc)
    sock.sendall(data)


def _recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("zygote channel closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock):
    head, anc, _flags, _addr = sock.recvmsg(4, _socket.CMSG_SPACE(_FD.size * 4))
    if len(head) < 4:
        if not head:
            raise EOFError("zygote channel closed")
        head += _recv_exact(sock, 4 - len(head))
    fds = []
    for level, kind, data in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [_FD.unpack_from(data, i)[0] for i in range(0, len(data) - len(data) % _FD.size, _FD.size)]
    (size,) = struct.unpack(">I", head)
    return marshal.loads(_recv_exact(sock, size)), fds


class Zygote:
    """The judge's handle on its zygote. Replies are tagged with the child's pid, so a late exit
    report of an earlier child is never taken for the answer to a later request."""

    def __init__(self, pid, sock):
        self.pid, self.sock = pid, sock

    def load(self, setup):
        """Send the program (and, for assert jobs, the prelude and entry point)."""
        try:
            _send(self.sock, ("program", setup))
        except OSError as exc:
            raise ZygoteGone("the zygote is gone: %r" % exc) from None

    def start(self, kind, fds, deadline):
        """Fork a case child of `kind` ("stdio" or "call") owning `fds` (closed here); its pid.
        ZygoteGone when the zygote is dead, cannot fork, or does not answer by `deadline`."""
        try:
            _send(self.sock, ("run", kind), fds)
        except OSError as exc:
            raise ZygoteGone("the zygote is gone: %r" % exc) from None
        finally:
            for fd in fds:
                os.close(fd)
        while True:
            reply = self._next(deadline)
            if reply is None:
                raise ZygoteGone("the zygote did not answer in time (stopped?)")
            if reply[0] == "pid":
                return reply[1]
            if reply[0] == "error":
                raise ZygoteGone("the zygote could not fork: %s" % reply[1])

    def wait(self, pid, deadline):
        """The wait status of child `pid`, or None when `deadline` passed first."""
        while True:
            reply = self._next(deadline)
            if reply is None:
                return None
            if reply[0] == "exit" and reply[1] == pid:
                return reply[2]

    def _next(self, deadline):
        """The next message, or None at `deadline`. While waiting, the zygote is resumed every
        50 ms: a program may have stopped it (SIGSTOP), which would otherwise stall every case."""
        import select
        import time

        while deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if select.select([self.sock], [], [], min(left, 0.05))[0]:
                break
            try:
                os.kill(self.pid, 18)  # SIGCONT
            except OSError:
                pass
        try:
            return _recv(self.sock)[0]
        except (OSError, EOFError, ValueError) as exc:
            raise ZygoteGone("the zygote is gone: %r" % exc) from None


def fork(keep_in_judge):
    """Fork the zygote. In the judge: returns a `Zygote`. In a case child: returns (kind, setup,
    fds) for the caller to run. The zygote itself never returns. `keep_in_judge`: descriptors the
    zygote must not hold (the job's stdin, the verdict pipe)."""
    judge_end, zygote_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    pid = os.fork()
    if pid:
        zygote_end.close()
        return Zygote(pid, judge_end)
    judge_end.close()
    return _serve(zygote_end, keep_in_judge)


def _serve(sock, foreign):
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for fd in (null, *foreign):
        if fd > 2:
            os.close(fd)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:  # the OOM killer picks this side, not the judge
            f.write("1000")
    except OSError:
        pass
    import site

    site.main()  # what `python3 -I` does at start (the judge runs with -S)
    setup = None
    while True:
        try:
            message, fds = _recv(sock)
        except (OSError, EOFError):
            os._exit(0)
        if message[0] == "program":
            setup = message[1]
            if setup.get("kind") == "assert":
                import candidate  # noqa: F401  (its imports once here, not in every case child)
            continue
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN: the program's processes fill the pids limit
            for fd in fds:
                os.close(fd)
            _send(sock, ("error", repr(exc)))
            continue
        if pid == 0:
            sock.close()
            return message[1], setup, fds
        for fd in fds:
            os.close(fd)
        _send(sock, ("pid", pid))
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        _send(sock, ("exit", pid, status))


def run_case(kind, setup, fds):
    """In a case child: a new session, Ctrl-C as Python has it, then the program. Returns only
    by raising (SystemExit or the program's exception), so the interpreter exits as it would at
    the end of `python3 -I main.py`."""
    import _signal

    os.setsid()
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    sys.path[:] = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
    if kind == "call":
        import candidate

        os.dup2(fds[0], 3)
        os.dup2(fds[1], 4)
        os.closerange(5, 1 << 16)
        candidate.serve(3, 4, setup)
        raise SystemExit(0)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, 1 << 16)
    _run_main(setup["program"])


def _run_main(program):
    """Run `program` as `__main__`, as `python3 -I /tmp/main.py` would."""
    import builtins

    main = type(sys)("__main__")
    main.__file__, main.__builtins__ = MAIN_FILE, builtins
    sys.modules["__main__"] = main
    sys.argv[:] = [MAIN_FILE]
    global _SOURCE
    _SOURCE = program
    sys.excepthook = _program_excepthook
    exec(compile(program, MAIN_FILE, "exec"), main.__dict__)
    raise SystemExit(0)


def _program_excepthook(kind, value, tb):
    """Print the traceback from the program's first frame on (not the zygote's frames)."""
    import linecache
    import traceback

    while tb is not None and tb.tb_frame.f_code.co_filename != MAIN_FILE:
        tb = tb.tb_next
    linecache.cache[MAIN_FILE] = (len(_SOURCE), None, _SOURCE.splitlines(True), MAIN_FILE)
    traceback.print_exception(kind, value, tb)
