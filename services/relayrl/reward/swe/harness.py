"""The trusted SWE harness inside the sandbox: apply the patch, restore the tests, run pytest.

Runs with the sandbox's interpreter and the standard library only (relayrl is not importable in
the sandbox). argv: `harness.py VERDICT_FD REPO_TAR`; the job (patch, test files, test command,
timeout) comes as JSON on stdin. It makes itself non-dumpable (a process of the same uid cannot
open its file descriptors through /proc), and its verdict pipe is closed in every process it
starts, so the tests cannot write the verdict. Steps:

1. extract the repository snapshot (`REPO_TAR`, a read-only file) into a fresh directory;
2. apply the patch: `git apply`, else `patch -p1` (then `-p0`), each checked with a dry run first
   so a half-applied patch is never tested; the reasons of every failed try go in the verdict;
3. restore the task's test files and the files that steer pytest (conftest.py, pytest.ini,
   tox.ini, setup.cfg, pyproject.toml, sitecustomize.py, usercustomize.py, *.pth) to the snapshot's
   content, deleting any the patch added: a patch cannot edit the judge; then append the job's
   sentinel tests (`relayrl.reward.swe.tamper`) to the restored test files;
4. run the test command with `--junitxml` (pytest's built-in JUnit XML report, xunit1 so each
   case names its file), its output to a file and its deadline enforced on its whole session;
5. write one JSON verdict (apply result, restored paths, exit code, the XML report) to the pipe,
   after `{"event": "untrusted"}` (written once the snapshot is extracted, before the patch is
   applied): a harness failure after that line is the patch's doing (`relayrl.reward.verdict`).
   SIGINT keeps its default disposition, so the tests (pid 1's namespace) cannot interrupt it.

The host grades from the XML by test id; stdout is only kept (a tail) for people to read.
"""

import ctypes
import fnmatch
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

PROTECTED = ("conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "sitecustomize.py",
             "usercustomize.py", "*.pth")
MAX_REPORT = 8 << 20
ENV = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
       "TMPDIR": os.environ.get("TMPDIR", "/tmp"), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
       "GIT_CEILING_DIRECTORIES": "/", "GIT_CONFIG_NOSYSTEM": "1"}


def run(argv, cwd, timeout):
    proc = subprocess.run(argv, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, start_new_session=True)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")[-1500:]


def apply_patch(work, patch_path):
    """Try each tool (dry run, then for real); return what happened."""
    tries = [("git apply", ["git", "apply", "--whitespace=nowarn", "--recount", "--check", patch_path],
              ["git", "apply", "--whitespace=nowarn", "--recount", patch_path])]
    for strip in ("-p1", "-p0"):
        base = ["patch", strip, "--batch", "--forward", "--no-backup-if-mismatch", "--reject-file=-",
                "--fuzz=2", "-i", patch_path]
        tries.append((f"patch {strip}", base + ["--dry-run"], base))
    errors = {}
    for name, check, real in tries:
        code, out = run(check, work, 60)
        if code == 0:
            code, out = run(real, work, 60)
            if code == 0:
                return {"ok": True, "method": name, "errors": errors}
        errors[name] = out.strip() or f"exit code {code}"
    return {"ok": False, "method": None, "errors": errors}


def restore(work, archive, test_files):
    """Put the test files and pytest-steering files back as the snapshot has them."""
    members = {m.name[2:] if m.name.startswith("./") else m.name: m for m in archive.getmembers() if m.isfile()}
    wanted = set(test_files)
    wanted.update(p for p in members if any(fnmatch.fnmatch(os.path.basename(p), pat) for pat in PROTECTED))
    for root, _dirs, files in os.walk(work):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), work)
            if any(fnmatch.fnmatch(name, pat) for pat in PROTECTED):
                wanted.add(rel)
    restored = []
    for rel in sorted(wanted):
        path = os.path.join(work, rel)
        before = None
        if os.path.islink(path) or os.path.isdir(path):  # the patch put something else there
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
            restored.append(rel)
        elif os.path.isfile(path):
            with open(path, "rb") as fh:
                before = fh.read()
        if rel in members:
            data = archive.extractfile(members[rel]).read()
            if before != data:
                os.makedirs(os.path.dirname(path) or work, exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(data)
                if rel not in restored:
                    restored.append(rel)
        elif os.path.lexists(path):
            os.remove(path)
            restored.append(rel)
    return restored


def plant(work, sentinels):
    """Append each test file's sentinel tests (after `restore`: the snapshot's file plus them)."""
    for rel, code in sentinels.items():
        with open(os.path.join(work, rel), "ab") as fh:
            fh.write(code.encode())
    return sorted(sentinels)


def run_tests(work, job):
    report = os.path.join(tempfile.mkdtemp(prefix="report-"), "junit.xml")
    argv = list(job["test_command"])
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    argv += ["-p", "no:cacheprovider", "-o", "junit_family=xunit1", "--junitxml", report, *job["test_args"]]
    log_path = os.path.join(os.path.dirname(report), "output.log")
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=work, env=ENV, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=job["timeout_s"])
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with open(log_path, "rb") as log:
        log.seek(max(0, os.path.getsize(log_path) - 3000))
        tail = log.read().decode(errors="replace")
    xml = None
    if os.path.isfile(report) and os.path.getsize(report) <= MAX_REPORT:
        with open(report, "rb") as fh:
            xml = fh.read().decode(errors="replace")
    return {"exit_code": proc.returncode, "timed_out": timed_out, "junit": xml, "output_tail": tail,
            "test_s": round(time.monotonic() - started, 3), "argv": argv[1:]}


def main():
    verdict_fd, archive_path = int(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1: the tests cannot interrupt the harness
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    os.set_inheritable(verdict_fd, False)
    verdict = {}
    out = os.fdopen(verdict_fd, "w")
    try:
        job = json.loads(sys.stdin.buffer.read())
        if "pytest" in job["test_command"] and importlib.util.find_spec("pytest") is None:
            raise RuntimeError(f"pytest is not installed for the sandbox's interpreter {sys.executable}")
        for tool in ("git", "patch"):  # checked here: a failure to apply must be the patch's alone
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed in the sandbox")
        work = tempfile.mkdtemp(prefix="ws-")
        with tarfile.open(archive_path) as archive:
            archive.extractall(work)
            out.write('{"event": "untrusted"}\n')  # from here on the patch steers what runs
            out.flush()
            patch_path = os.path.join(tempfile.mkdtemp(prefix="patch-"), "model.patch")
            with open(patch_path, "w", encoding="utf-8") as fh:
                fh.write(job["patch"])
            verdict["apply"] = apply_patch(work, patch_path)
            if verdict["apply"]["ok"]:
                verdict["restored"] = restore(work, archive, job["test_files"])
                verdict["planted"] = plant(work, job.get("sentinels", {}))
                verdict.update(run_tests(work, job))
    except Exception as exc:  # the verdict says the harness broke (whose fault: the "untrusted" line)
        verdict = {"error": f"harness: {type(exc).__name__}: {exc}"}
    with out:
        out.write(json.dumps(verdict))
    if os.getpid() == 1:  # pid 1 of the job's namespace: nothing the tests started outlives it
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    main()
