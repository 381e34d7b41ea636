"""`reward.sandbox:` and `reward.swe.limits:` — the sandbox untrusted code runs in, and the limits
of one job. The limits are one section (`SandboxLimits`) used twice: short code jobs get the
sandbox's own defaults, SWE jobs (a repository's test suite: minutes, more memory) their own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from relayrl.config.base import Section


class SandboxLimits(Section):
    """What one sandbox job may use (cgroup limits of the whole job, rlimits of each process)."""

    memory_mb: int = Field(512, ge=32)
    """cgroup memory limit of a whole job (every process and its tmpfs pages)."""
    max_processes: int = Field(64, ge=4)
    """cgroup pids limit and RLIMIT_NPROC of a job."""
    cpu_s: int = Field(20, ge=1)
    """RLIMIT_CPU of each process, in CPU seconds."""
    address_space_mb: int = Field(1024, ge=64)
    """RLIMIT_AS of each process."""
    file_size_mb: int = Field(16, ge=1)
    """RLIMIT_FSIZE: largest file a process may write."""
    open_files: int = Field(256, ge=16)
    """RLIMIT_NOFILE of each process."""
    tmpfs_mb: int = Field(64, ge=1)
    """Size of the private /tmp and /dev/shm (each)."""
    max_output_bytes: int = Field(1 << 20, ge=1024)
    """Cap on each output stream of a job (and of each test case); past it the job is killed."""


class SandboxConfig(SandboxLimits):
    """The sandbox untrusted code runs in (bubblewrap, unprivileged uid, rlimits, cgroups, seccomp),
    with the limits of a code job."""

    allow_weak: bool = False
    """Where bwrap is missing or cannot create its namespaces here, run untrusted code without namespaces or seccomp (uid, rlimits and cgroups only) instead of refusing it."""
    proc: Literal["fresh", "bind"] = "fresh"
    """/proc inside a job: fresh mounts a new one of the job's pid namespace (in a container that needs an unmasked /proc); bind mounts the container's own read-only, which a masked /proc allows, and lets the job list the container's processes (docs/deploying.md)."""
    use_cgroups: bool = True
    """Put each job in its own memory and pids cgroup where the host allows it (v1 or v2)."""
    python: str = "/usr/bin/python3"
    """Interpreter inside the sandbox (the host's, mounted read-only with /usr)."""
    uid_base: int = Field(1_800_000, ge=1000, le=4_000_000_000)
    """When the service is root, each job runs as a host uid of [uid_base, uid_base + uid_count), leased host-wide for the job's life (uids no one else uses)."""
    uid_count: int = Field(4096, ge=1, le=1_000_000)
    """How many uids from uid_base the sandbox's jobs may lease: the most jobs running at once on one host (agent workspaces, warm spares included, and the code lane's prespawned sandboxes each hold one)."""

    def with_limits(self, limits: SandboxLimits) -> SandboxConfig:
        """This sandbox with another job's limits (the SWE verifier's)."""
        return self.model_copy(update=limits.model_dump())


SWE_LIMITS = SandboxLimits(memory_mb=2048, cpu_s=600, address_space_mb=4096, tmpfs_mb=256)
"""A SWE job's defaults: a repository's whole test suite, minutes long, in a larger /tmp."""
