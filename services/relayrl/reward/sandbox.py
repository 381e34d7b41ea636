"""The sandbox for untrusted code: bubblewrap namespaces, an unprivileged uid, limits, a deadline.

A job is one command run under these layers, each of which holds on its own:

- **namespaces** (bubblewrap): new user, pid, mount, network, IPC, UTS and cgroup namespaces; the
  root is empty but for `/usr` (and the `/bin`, `/lib*` links) mounted read-only, a fresh `/proc`
  of the new pid namespace (or, with `proc: bind`, the container's own read-only: a container
  runtime's masked /proc refuses a fresh one), a minimal `/dev`, and size-capped tmpfs on `/tmp`
  and `/dev/shm`; no network device but loopback; no nested user namespaces (`--disable-userns`
  with a fresh /proc; the seccomp filter forbids them either way); a new session.
- **an unprivileged uid**: where the service runs as root, bwrap itself is started as a uid of
  `[uid_base, uid_base + uid_count)` leased for the job's life host-wide (`uids.py`: no other job
  of any process on the host has it meanwhile), so the code is not root on the host even if a
  namespace were escaped, and per-uid limits bound this job alone; inside it is `nobody` (65534).
- **rlimits** on the job's first process, inherited by all it forks: CPU seconds, address space,
  file size, open files, processes.
- **cgroup** memory and pids limits for the whole job where the host allows them (`cgroups.py`,
  v1 and v2), which also list the job's processes so the end of a job kills every one.
- **seccomp** (`seccomp_filter.py`): no sockets but AF_UNIX, no ptrace, mount, namespaces, BPF...
- **a wall-clock deadline**: past it the job's pid-namespace init is killed, which makes the
  kernel kill every process in the namespace (setsid and double-forked daemons included), and
  every process left in the cgroup is killed too.
- **capped output**: stdout, stderr and the verdict pipe are read concurrently; past the cap the
  job is killed (`kill_reason="output"`).
- **a scrubbed environment**: nothing of the service's environment is passed in.

The verdict channel: a pipe whose read end only the service holds; the trusted harness inside
(its number replaces `{verdict_fd}` in the command) writes to it, and closes it to everything it starts (`inside/harness.py`).

Job setup is race-free: the rlimits are set by `prlimit` before bwrap starts, and bwrap reports its
sandbox init's pid (`--info-fd`) and waits (`--block-fd`) while the service moves that pid into
the cgroup; only then does anything untrusted run. `run` is `start` (set up, return a
`StartedJob` running under every layer, before it has any input: a job may be started ahead of
its input, `prespawn.py`) then `StartedJob.finish` (feed, read, deadline, clean-up:
`sandbox_job.py`).

At start the sandbox runs one empty job: where bwrap is missing, or cannot create its namespaces
here (a container's seccomp profile, a masked /proc, a kernel that forbids user namespaces), the
service refuses untrusted code unless the config sets `allow_weak`: then jobs run as the
unprivileged uid with rlimits, cgroups and a scrubbed environment but no namespaces and no
seccomp filter (mode "weak"). Either way it says so once: health (`mode`, `reason`), the
`relayrl_sandbox_isolation_unavailable{layer}` metric, and one log line; the same for per-job
cgroups the config asks for and the host does not allow (`cgroups: "none"`, `cgroups_reason`).

What this does not cover: kernel vulnerabilities (run reward workers under gVisor where the
cluster has it, DESIGN.md), CPU-cache side channels, and denial of service through disk I/O
bandwidth or CPU time shared with other jobs on the host (bounded only by the deadline).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from prometheus_client import Gauge

from relayrl.config import SandboxConfig
from relayrl.reward import seccomp_filter
from relayrl.reward.cgroups import Cgroups
from relayrl.reward.sandbox_job import SandboxResult, StartedJob
from relayrl.reward.uids import UidPool

log = logging.getLogger(__name__)

ISOLATION_UNAVAILABLE = Gauge(
    "relayrl_sandbox_isolation_unavailable", "1 for an isolation layer the config asks for that this host cannot "
    "give the sandbox (namespaces: bubblewrap cannot create them; cgroups: no per-job cgroups), else 0.", ["layer"])
INSIDE_UID = 65534
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
       "PYTHONHASHSEED": "0", "TMPDIR": "/tmp"}


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot isolate jobs here, and the config does not allow the weak mode."""


def _read_fd(fd: int, deadline: float) -> bytes:
    """Read `fd` to EOF or one JSON document, whichever comes first (bwrap --info-fd)."""
    data = b""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
            try:
                json.loads(data)
                return data
            except ValueError:
                continue
    finally:
        sel.close()
    return data


class Sandbox:
    """Runs commands under the layers above; thread-safe."""

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg, self.proc = cfg, cfg.proc
        self.bwrap = shutil.which("bwrap")
        self.mode, self.reason = "bwrap", None
        self.cgroups = Cgroups(enabled=cfg.use_cgroups)
        self.as_root = os.geteuid() == 0
        self.uids = UidPool(cfg.uid_base, cfg.uid_count) if self.as_root else None
        if self.bwrap:
            seccomp_filter.compiled()  # fail at start-up, not on the first job
            self.reason = self._probe()
        else:
            self.reason = "bubblewrap (bwrap) is not installed"
        if self.reason is not None:
            self.mode = "weak" if cfg.allow_weak else "unavailable"
            self.reason += ("; reward.sandbox.allow_weak: running untrusted code without namespaces or seccomp"
                            if cfg.allow_weak else "; this service refuses untrusted code (reward.sandbox.allow_weak is false)")
            log.error("sandbox isolation unavailable: %s", self.reason)
        missing_cgroups = cfg.use_cgroups and self.cgroups.mode == "none"
        if missing_cgroups:
            log.warning("sandbox jobs run without per-job cgroups: %s", self.cgroups.reason)
        ISOLATION_UNAVAILABLE.labels("namespaces").set(float(self.mode != "bwrap"))
        ISOLATION_UNAVAILABLE.labels("cgroups").set(float(missing_cgroups))

    def _probe(self) -> str | None:
        """Run one empty job: None when bwrap isolates jobs here, else what stops it."""
        def failure() -> str | None:
            result = self.run(["/usr/bin/true"], timeout_s=10.0, as_pid_1=True)  # reaped by bwrap itself: no orphan
            if result.error is None and result.exit_code == 0:
                return None
            text = (result.error or result.stderr.decode(errors="replace") or f"exit code {result.exit_code}").strip()
            return text.splitlines()[-1][-300:]

        why = failure()
        if why is None:
            return None
        hint = ("; the container's seccomp or AppArmor profile, or the kernel, forbids the namespaces bubblewrap "
                "makes (docs/deploying.md)")
        if self.proc == "fresh":
            self.proc = "bind"  # would the container's own /proc do? then say so
            if failure() is None:
                hint = ("; a bind of the container's /proc would work: set reward.sandbox.proc: bind, or give the "
                        "pod an unmasked /proc (docs/deploying.md)")
            self.proc = "fresh"
        return f"bubblewrap cannot create the sandbox here: {why}{hint}"

    def health(self) -> dict:
        """How jobs are isolated on this host (health, metrics, logs); `reason` says why not when
        the isolation configured is unavailable."""
        return {"mode": self.mode, "reason": self.reason, "proc": self.proc, "cgroups": self.cgroups.mode,
                "cgroups_reason": self.cgroups.reason, "unprivileged_uid": self.as_root or os.geteuid() != 0,
                "seccomp": self.mode == "bwrap"}

    def _bwrap_args(self, info_w: int, block_r: int, seccomp_fd: int, files: dict[str, int],
                    as_pid_1: bool) -> list[str]:
        # --disable-userns writes the job's /proc/sys/user/max_user_namespaces, which a bound
        # container /proc has read-only: there the seccomp filter alone forbids nested namespaces
        userns = ["--disable-userns"] if self.proc == "fresh" else []
        args = [self.bwrap, "--unshare-all", "--unshare-user", *userns, "--die-with-parent",
                "--new-session", "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID), "--clearenv",
                "--ro-bind", "/usr", "/usr"]
        for link in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            path = Path(link)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), link]
            elif path.is_dir():
                args += ["--ro-bind", link, link]
        args += ["--proc", "/proc"] if self.proc == "fresh" else ["--ro-bind", "/proc", "/proc"]
        args += ["--dev", "/dev",
                 "--size", str(self.cfg.tmpfs_mb << 20), "--tmpfs", "/tmp",
                 "--size", str(self.cfg.tmpfs_mb << 20), "--tmpfs", "/dev/shm",
                 "--size", "16777216", "--tmpfs", "/sandbox"]
        for dest, fd in files.items():
            args += ["--perms", "0444", "--file", str(fd), dest]
        args += ["--remount-ro", "/sandbox", "--chdir", "/tmp"]
        for key, value in ENV.items():
            args += ["--setenv", key, value]
        args += ["--info-fd", str(info_w), "--block-fd", str(block_r), "--seccomp", str(seccomp_fd)]
        if as_pid_1:
            args.append("--as-pid-1")
        return args + ["--"]

    def _prlimit(self, nproc: bool) -> list[str]:
        """`prlimit` (util-linux) lowers the limits of the job's first process, then executes it:
        race-free (nothing untrusted has run yet) and needs no privilege (this host's root may lack
        CAP_SYS_RESOURCE, which setting another process's limits needs).

        RLIMIT_NPROC counts a uid's processes per user namespace, and a namespace's creator's limit
        at its creation also caps the uid's count in the parent namespace. So in bwrap mode it is
        set by a second prlimit *inside* the job's namespace (`nproc=False` here): there it counts
        the job's processes alone. Set on bwrap it would count every process of the service's uid
        on the host, the service's own threads and other pods running as the same uid included,
        and a busy host would keep honest jobs from forking (measured in the chart's reward pod)."""
        c = self.cfg
        return ["/usr/bin/prlimit", f"--cpu={c.cpu_s}", f"--as={c.address_space_mb << 20}",
                f"--fsize={c.file_size_mb << 20}", f"--nofile={c.open_files}",
                *([f"--nproc={c.max_processes}"] if nproc else []), "--core=0", "--"]

    def run(self, argv: list[str], stdin: bytes = b"", files: dict[str, bytes] | None = None,
            timeout_s: float = 10.0, as_pid_1: bool = False) -> SandboxResult:
        """Run `argv` in a fresh sandbox with `stdin`, the read-only `files` ({"/sandbox/x": data})
        and a verdict pipe (its fd number replaces "{verdict_fd}" in `argv`); the whole job is
        killed at `timeout_s`."""
        return self.start(argv, files, as_pid_1).finish(stdin, timeout_s)

    def start(self, argv: list[str], files: dict[str, bytes] | None = None, as_pid_1: bool = False) -> StartedJob:
        """Start `argv` as `run` does and return once its limits are in place and it runs,
        before it has any input: `finish(stdin, timeout_s)` feeds it (its deadline counts from
        then). A job started ahead of its input holds its uid and cgroup while it waits."""
        if self.mode == "unavailable":
            raise SandboxUnavailable(self.reason)
        started = time.monotonic()
        job = StartedJob(self.cfg.max_output_bytes)
        opened = job.opened

        def fd_pair() -> tuple[int, int]:
            r, w = os.pipe()
            opened.extend((r, w))
            return r, w

        try:
            verdict_r, verdict_w = fd_pair()
            info_r, info_w = fd_pair()
            block_r, block_w = fd_pair()
            file_fds = {}
            for dest, data in (files or {}).items():
                fd = os.memfd_create("relayrl-file", 0)
                opened.append(fd)
                os.write(fd, data)
                os.lseek(fd, 0, os.SEEK_SET)
                file_fds[dest] = fd
            cgroup = job.cgroup = self.cgroups.create(self.cfg.memory_mb << 20, self.cfg.max_processes)
            job.lease = self.uids.acquire() if self.uids is not None else None
            uid = job.lease.uid if job.lease is not None else None
            if self.mode == "bwrap":
                seccomp_fd = seccomp_filter.memfd()
                opened.append(seccomp_fd)
                # the process limit is set inside the job's user namespace (its own count there):
                # set on bwrap, it would also cap the host uid's count in every namespace bwrap makes
                nproc = ["/usr/bin/prlimit", f"--nproc={self.cfg.max_processes}", "--"]
                cmd = self._bwrap_args(info_w, block_r, seccomp_fd, file_fds, as_pid_1) + nproc + argv
                pass_fds = (verdict_w, info_w, block_r, seccomp_fd, *file_fds.values())
                cwd = None
            else:  # weak: no namespaces; the files go to a private read-only directory
                workdir = job.workdir = Path(tempfile.mkdtemp(prefix="relayrl-weak-"))
                os.chmod(workdir, 0o755)
                for dest, data in (files or {}).items():
                    target = workdir / Path(dest).name
                    target.write_bytes(data)
                    target.chmod(0o444)
                argv = [a.replace("/sandbox/", f"{workdir}/") for a in argv]
                run_dir = workdir / "run"
                run_dir.mkdir()
                if uid is not None:
                    os.chown(run_dir, uid, uid)
                cmd, pass_fds, cwd = argv, (verdict_w,), str(run_dir)
            env = dict(ENV, TMPDIR=cwd or "/tmp", HOME=cwd or "/tmp") if self.mode == "weak" else {}
            cmd = self._prlimit(nproc=self.mode != "bwrap") + [a.replace("{verdict_fd}", str(verdict_w)) for a in cmd]
            if uid is not None:
                # setpriv drops to the job's uid. Not Popen(user=): that forces fork() instead of
                # vfork(), and a fork in a threaded gRPC process runs gRPC's atfork handlers, which
                # can crash the child before it executes anything.
                cmd = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                       "--", *cmd]
            proc = job.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds,
                env=env, cwd=cwd, start_new_session=True, close_fds=True)
            for fd in (verdict_w, info_w, block_r):
                os.close(fd)
                opened.remove(fd)
            if self.mode == "bwrap":
                info = _read_fd(info_r, started + 10.0)
                try:
                    child = int(json.loads(info)["child-pid"])
                except (ValueError, KeyError):
                    proc.kill()
                    _, err = proc.communicate(timeout=5)
                    job.failed = SandboxResult(None, stderr=err, duration_s=time.monotonic() - started,
                                               error=f"bwrap did not start: {err.decode(errors='replace')[-500:]}")
                    return job
            else:
                child = proc.pid
            if cgroup is not None:
                cgroup.add(child)
            if self.mode == "bwrap":
                os.write(block_w, b"1")  # release the sandbox: its limits are in place
            job.child, job.verdict_r = child, verdict_r
            return job
        except BaseException:
            job.close()
            raise
