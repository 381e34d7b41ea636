"""cgroup v2 delegation of the sandbox's job cgroups (relayrl.reward.cgroups).

This host's memory and pids controllers are on cgroup v1, so the v2 path runs here twice over:
- against a fake cgroupfs (a tmp tree laid out like /sys/fs/cgroup inside a container, with the
  v2 interface files): which files the service writes, and what it reports when it cannot;
- against the kernel's real cgroup2 hierarchy (/sys/fs/cgroup/unified on this hybrid host), whose
  only controller is hugetlb: moving into a leaf, enabling the controller in `subtree_control`
  (which the kernel refuses while the cgroup holds a process: "no internal processes"), jobs
  created, killed with `cgroup.kill` and removed. memory and pids on a real v2 kernel were not run
  here (docs/deploying.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relayrl.reward import cgroups as cg

UNIFIED = Path("/sys/fs/cgroup/unified")


def fake_tree(tmp_path: Path, delegated: str = "memory pids") -> tuple[Path, Path, Path]:
    """A container's view of a v2 host: its cgroup at /kubepods/pod1/ctr holding this process."""
    root = tmp_path / "cgroup"
    own = root / "kubepods" / "pod1" / "ctr"
    own.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (own / "cgroup.controllers").write_text(delegated + "\n")
    (own / "cgroup.subtree_control").write_text("\n")
    (own / "cgroup.procs").write_text(f"{os.getpid()}\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/kubepods/pod1/ctr\n")
    return root, own, proc


def test_v2_moves_to_a_leaf_enables_the_controllers_and_limits_each_job(tmp_path):
    root, own, proc = fake_tree(tmp_path)
    groups = cg.Cgroups(root=root, proc_cgroup=proc)
    assert (groups.mode, groups.reason) == ("v2", None)
    assert (own / "relayrl-service" / "cgroup.procs").read_text() == str(os.getpid())
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    job = groups.create(256 << 20, 32)
    (path,) = set(job.dirs.values())
    assert path.parent == own and path.name.startswith(f"relayrl-job-{os.getpid()}-")
    assert (path / "memory.max").read_text() == str(256 << 20)
    assert (path / "pids.max").read_text() == "32"
    # a second sandbox of the same service (now in the leaf) uses the same base, not a deeper one
    (proc).write_text("0::/kubepods/pod1/ctr/relayrl-service\n")
    (own / "cgroup.subtree_control").write_text("memory pids\n")
    again = cg.Cgroups(root=root, proc_cgroup=proc)
    assert again.mode == "v2" and again.bases == {"memory": own, "pids": own}


def test_v2_reports_controllers_its_parent_did_not_delegate(tmp_path):
    root, own, proc = fake_tree(tmp_path, delegated="cpu io")
    groups = cg.Cgroups(root=root, proc_cgroup=proc)
    assert groups.mode == "none" and groups.create(1 << 20, 8) is None
    assert "memory, pids not delegated" in groups.reason and str(own) in groups.reason
    assert not (own / "relayrl-service").exists()


def test_a_job_cgroup_whose_limits_cannot_be_set_is_removed_again(tmp_path, monkeypatch):
    root, own, proc = fake_tree(tmp_path)
    groups = cg.Cgroups(root=root, proc_cgroup=proc)

    def refuse(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(groups, "_limit", refuse)
    with pytest.raises(PermissionError):
        groups.create(1 << 20, 8)
    assert sorted(p.name for p in own.iterdir() if p.name.startswith("relayrl-job-")) == []


def test_start_up_removes_job_cgroups_of_a_process_that_is_gone(tmp_path):
    root, own, proc = fake_tree(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (own / f"relayrl-job-{dead.pid}-0").mkdir()
    (own / f"relayrl-job-{os.getpid()}-999").mkdir()  # this process's own: alive, kept
    cg.Cgroups(root=root, proc_cgroup=proc)
    assert sorted(p.name for p in own.iterdir() if p.name.startswith("relayrl-job-")) == [f"relayrl-job-{os.getpid()}-999"]


def test_disabled_and_v1_unwritable_say_why(tmp_path):
    assert cg.Cgroups(enabled=False).reason == "disabled (reward.sandbox.use_cgroups: false)"
    root = tmp_path / "v1"
    (root / "memory").mkdir(parents=True)  # no pids hierarchy, and the memory one lacks our cgroup
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("4:memory:/docker/abc\n0::/\n")
    groups = cg.Cgroups(root=root, proc_cgroup=proc)
    assert groups.mode == "none"
    assert groups.reason == f"cgroup v1: memory ({root}/memory/docker/abc not writable), pids (no v1 hierarchy)"


# -- the kernel's own cgroup2 hierarchy -------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, os, subprocess, sys, time
    from pathlib import Path
    from relayrl.reward.cgroups import Cgroups
    unified, mine = Path(sys.argv[1]), Path(sys.argv[2])
    (mine / "cgroup.procs").write_text(str(os.getpid()))  # as if this were a container's cgroup
    groups = Cgroups(root=unified, controllers=("hugetlb",))
    report = {"mode": groups.mode, "reason": groups.reason,
              "own": Path("/proc/self/cgroup").read_text().splitlines()[-1]}
    if groups.mode == "v2":
        job = groups.create(1 << 20, 8)
        path = job.dirs["hugetlb"]
        sleeper = subprocess.Popen(["sleep", "60"])
        job.add(sleeper.pid)
        report["controllers_in_job"] = (path / "cgroup.controllers").read_text().split()
        report["pids_before"] = sorted(job.pids())
        job.kill_all()
        report["returncode"] = sleeper.wait(timeout=5)
        job.remove()
        report["job_left"] = path.exists()
        report["second_sandbox"] = [Cgroups(root=unified, controllers=("hugetlb",)).bases.get("hugetlb") == mine]
    print(json.dumps(report))
""")


@pytest.fixture
def unified_cgroup():
    """A cgroup of the real cgroup2 hierarchy with hugetlb offered to it, removed afterwards."""
    if not (UNIFIED / "cgroup.controllers").exists() or "hugetlb" not in (UNIFIED / "cgroup.controllers").read_text():
        pytest.skip("no cgroup2 hierarchy with a free controller on this host")
    enabled_before = "hugetlb" in (UNIFIED / "cgroup.subtree_control").read_text().split()
    (UNIFIED / "cgroup.subtree_control").write_text("+hugetlb")
    mine = UNIFIED / f"relayrl-test-{os.getpid()}"
    mine.mkdir()
    yield mine
    for path in sorted(mine.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_dir():
            for pid in (path / "cgroup.procs").read_text().split():
                (UNIFIED / "cgroup.procs").write_text(pid)
            path.rmdir()
    for pid in (mine / "cgroup.procs").read_text().split():
        (UNIFIED / "cgroup.procs").write_text(pid)
    mine.rmdir()
    if not enabled_before:
        (UNIFIED / "cgroup.subtree_control").write_text("-hugetlb")


def run_child(mine: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(UNIFIED), str(mine)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_real_cgroup2_delegation_leaf_controllers_kill_and_removal(unified_cgroup):
    report = run_child(unified_cgroup)
    assert report["mode"] == "v2", report
    assert report["own"] == f"0::/{unified_cgroup.name}/relayrl-service"  # moved itself into the leaf
    assert report["controllers_in_job"] == ["hugetlb"]  # enabled for the job by the kernel's rules
    assert len(report["pids_before"]) == 1 and report["returncode"] == -9  # cgroup.kill
    assert report["job_left"] is False and report["second_sandbox"] == [True]
    assert (unified_cgroup / "cgroup.subtree_control").read_text().split() == ["hugetlb"]


def test_real_cgroup2_another_process_in_the_cgroup_is_reported_not_raised(unified_cgroup):
    squatter = subprocess.Popen(["sleep", "60"])
    try:
        (unified_cgroup / "cgroup.procs").write_text(str(squatter.pid))
        report = run_child(unified_cgroup)
    finally:
        squatter.kill()
        squatter.wait()
    assert report["mode"] == "none"
    assert "Device or resource busy" in report["reason"] and str(squatter.pid) in report["reason"], report
