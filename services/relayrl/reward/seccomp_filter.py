"""The sandbox's seccomp filter, compiled to classic BPF with libseccomp (via `pyseccomp`).

bubblewrap loads the compiled program (`bwrap --seccomp FD`) right before it executes the
sandboxed command, so bwrap's own setup is not filtered and everything the command runs is. The
filter allows by default and denies, with EPERM (so programs see an ordinary error, not a crash):
sockets of any family but AF_UNIX (no network even if a namespace were shared), new namespaces
(`unshare`, `setns`, namespace flags on `clone`; `clone3` answers ENOSYS so libc falls back to
`clone`, whose flags the filter can read), `ptrace` and cross-process memory access, mounting,
kernel keyrings, BPF, perf events, userfaultfd, io_uring, module loading, reboot, clock setting,
swap, `personality` changes, and the TIOCSTI terminal injection ioctl.

What it does not cover: it is a deny list, not an allow list, so a kernel bug reachable through
an allowed syscall is not stopped by it; the namespaces, the unprivileged uid and the limits are
the other layers.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import termios

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "personality", "syslog", "quotactl", "lookup_dcookie", "name_to_handle_at", "open_by_handle_at",
)
NAMESPACE_FLAGS = (0x10000000, 0x04000000, 0x08000000, 0x20000000, 0x40000000, 0x00020000,
                   0x02000000, 0x00000080)  # NEWUSER, NEWUTS, NEWIPC, NEWPID, NEWNET, NEWNS, NEWCGROUP, NEWTIME


@functools.lru_cache(maxsize=1)
def compiled() -> bytes:
    """The filter as BPF bytes (built once per process)."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(deny, name)
        except (ValueError, OSError):  # a syscall this kernel / libseccomp does not know
            continue
    f.add_rule(deny, "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    f.add_rule(deny, "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
    for flag in NAMESPACE_FLAGS:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, termios.TIOCSTI))
    fd = os.memfd_create("relayrl-seccomp-build", 0)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            f.export_bpf(out)
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def memfd() -> int:
    """A fresh memfd holding the compiled filter, positioned at 0, for `bwrap --seccomp FD`."""
    fd = os.memfd_create("relayrl-seccomp", 0)
    os.write(fd, compiled())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
