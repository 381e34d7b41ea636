"""The episode's workspace server inside the sandbox: one per agent episode, alive across its tool calls.

Started as pid 1 of the sandbox's pid namespace (so nothing the model runs can signal it) with
`shell.py REPLY_FD REPO_TAR`, it extracts the task's repository snapshot into `/tmp/repo` (under
`$TMPDIR`: the job's private directory in the sandbox's weak mode), records that state as a git
commit kept outside the repository (`/tmp/.base.git`, so the model's `ls -a` shows no `.git` it
did not have), says it is ready, and then serves one request per line
of stdin, one JSON reply per line on the reply pipe (which only it holds: it is non-dumpable and
the pipe is closed in every process it starts). Stdlib only; run by the sandbox's interpreter.

Requests (`op`): `bash` (a command under `bash -c` in the repository, stdin empty, stdout and
stderr merged and truncated, killed with its whole session at `timeout_s`), `view` (a file with
line numbers, or a directory listing), `create` (write a file), `str_replace` (replace one unique
occurrence), `diff` (the repository against its snapshot, as `git diff --binary`), `ping`. A
request the model got wrong (no such file, an ambiguous replacement) is a reply with `error`;
the server never stops on one. After every command every other process in the namespace is
killed and reaped, so nothing a command starts outlives it or runs while the server works (in
the weak mode, without a pid namespace, only the command's session is killed; the job's cgroup
when the session closes).
File requests resolve paths inside `/tmp/repo` only and refuse anything else (`/proc` tricks).
"""

import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import tarfile
import time

BASE = os.environ.get("TMPDIR") or "/tmp"  # /tmp under bubblewrap; the job's private directory in weak mode
WORK = os.path.join(BASE, "repo")
GIT_DIR = os.path.join(BASE, ".base.git")
EXCLUDE = "__pycache__/\n*.pyc\n.pytest_cache/\n"
ENV = {"PATH": "/usr/bin:/bin", "HOME": BASE, "LANG": "C.UTF-8", "TMPDIR": BASE, "PYTHONDONTWRITEBYTECODE": "1",
       "PYTHONHASHSEED": "0", "TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat"}
GIT_ENV = {**ENV, "GIT_DIR": GIT_DIR, "GIT_WORK_TREE": WORK, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CEILING_DIRECTORIES": "/"}
GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "user.name=relayrl",
       "-c", "user.email=relayrl@localhost", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"]


def cut(text, limit):
    """`text` within `limit` characters: its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text, False
    half = max(0, limit // 2)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[len(text) - half:]}", True


class Output:
    """A command's output as its head and its tail (however much it writes), cut to `limit`."""

    def __init__(self, limit):
        self.limit, self.keep = limit, 2 * limit + 64
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, chunk):
        self.total += len(chunk)
        take = max(0, self.keep - len(self.head))
        self.head += chunk[:take]
        self.tail += chunk[take:]
        del self.tail[:max(0, len(self.tail) - self.keep)]

    def text(self):
        if self.total == len(self.head) + len(self.tail):
            return cut((self.head + self.tail).decode(errors="replace"), self.limit)
        half = self.limit // 2
        head, tail = self.head.decode(errors="replace")[:half], self.tail.decode(errors="replace")[-half:]
        return f"{head}\n[... {self.total - len(head) - len(tail)} bytes cut ...]\n{tail}", True


def reap_all():
    """Kill every other process of the namespace (this is pid 1) and reap them."""
    if os.getpid() == 1:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.005)


def git(*args, timeout=60):
    proc = subprocess.run([*GIT, *args], cwd=WORK, env=GIT_ENV, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()[-500:]}")
    return proc.stdout


def prepare(archive_path):
    os.makedirs(WORK)
    with tarfile.open(archive_path) as archive:
        archive.extractall(WORK)
    git("init", "-q")
    with open(os.path.join(GIT_DIR, "info", "exclude"), "w") as fh:
        fh.write(EXCLUDE)
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "--no-verify", "-m", "snapshot")


def run_bash(req):
    started = time.monotonic()
    timeout, limit = float(req["timeout_s"]), int(req["max_output"])
    proc = subprocess.Popen(["/bin/bash", "-c", str(req["command"])], cwd=WORK, env=ENV, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    fd, out = proc.stdout.fileno(), Output(limit)
    os.set_blocking(fd, False)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    timed_out, exited_at = False, None
    while True:
        now = time.monotonic()
        if now - started >= timeout:
            timed_out = True
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > 0.05:  # a background child holds the pipe open
            break
        if not sel.select(min(0.05, timeout - (now - started))):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out.add(chunk)
    sel.close()
    if not timed_out:  # its output is closed; it may not have exited yet (or closed stdout and went on)
        try:
            proc.wait(timeout=max(0.0, timeout - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            timed_out = True
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    code = proc.wait()
    proc.stdout.close()
    reap_all()
    text, truncated = out.text()
    return {"exit_code": None if timed_out else code, "output": text, "truncated": truncated,
            "timed_out": timed_out, "duration_s": round(time.monotonic() - started, 4)}


def resolve(path):
    """The real path of `path` (relative to the repository) if it lies inside it, else None."""
    if not isinstance(path, str) or not path or "\0" in path:
        return None
    full = os.path.realpath(os.path.join(WORK, path))
    return full if full == WORK or full.startswith(WORK + "/") else None


def listing(root):
    lines = []
    for base, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        depth = os.path.relpath(base, root).count("/") + (base != root)
        if depth >= 2:
            dirs[:] = []
        rel = os.path.relpath(base, WORK)
        lines += [os.path.normpath(os.path.join(rel, d)) + "/" for d in dirs]
        lines += [os.path.normpath(os.path.join(rel, f)) for f in sorted(files) if not f.endswith(".pyc")]
    return "\n".join(sorted(lines)) + "\n"


def view(req):
    full = resolve(req.get("path"))
    if full is None:
        return {"error": f"{req.get('path')!r} is not a path inside the repository"}
    if os.path.isdir(full):
        return {"output": listing(full)}
    if not os.path.isfile(full):
        return {"error": f"{req['path']}: no such file or directory"}
    with open(full, "rb") as fh:
        data = fh.read(8 << 20)
    if b"\0" in data:
        return {"error": f"{req['path']}: a binary file"}
    lines = data.decode(errors="replace").splitlines()
    start = max(1, int(req.get("start") or 1))
    end = min(len(lines), int(req.get("end") or len(lines)))
    body = "".join(f"{n:6}\t{lines[n - 1]}\n" for n in range(start, end + 1))
    text, truncated = cut(body, int(req["max_output"]))
    return {"output": text, "truncated": truncated}


def create(req):
    full, content = resolve(req.get("path")), req.get("content")
    if full is None or full == WORK:
        return {"error": f"{req.get('path')!r} is not a file path inside the repository"}
    if not isinstance(content, str):
        return {"error": "content must be a string"}
    if os.path.isdir(full):
        return {"error": f"{req['path']}: is a directory"}
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as fh:
        fh.write(content)
    return {"output": f"wrote {len(content)} characters to {os.path.relpath(full, WORK)}"}


def str_replace(req):
    full, old, new = resolve(req.get("path")), req.get("old"), req.get("new")
    if full is None or not os.path.isfile(full):
        return {"error": f"{req.get('path')!r} is not a file of the repository"}
    if not isinstance(old, str) or not old or not isinstance(new, str):
        return {"error": "old must be a non-empty string and new a string"}
    with open(full, encoding="utf-8", errors="surrogateescape") as fh:
        text = fh.read()
    count = text.count(old)
    if count != 1:
        return {"error": f"old appears {count} times in {req['path']}; it must appear exactly once"}
    with open(full, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(text.replace(old, new, 1))
    line = text[:text.index(old)].count("\n") + 1
    return {"output": f"replaced one occurrence in {os.path.relpath(full, WORK)} at line {line}"}


def diff(req):
    git("add", "-A", timeout=60)
    patch = git("diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames",
                timeout=60).decode(errors="replace")
    limit = int(req["max_output"])
    return {"diff": patch[:limit], "truncated": len(patch) > limit}


OPS = {"bash": run_bash, "view": view, "create": create, "str_replace": str_replace, "diff": diff,
       "ping": lambda req: {"output": "pong"}}


def main():
    reply_fd, archive_path = int(sys.argv[1]), sys.argv[2]
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    os.set_inheritable(reply_fd, False)
    out = os.fdopen(reply_fd, "w", encoding="utf-8")

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    started = time.monotonic()
    try:
        prepare(archive_path)
    except Exception as exc:  # the host must learn that preparing failed (an infrastructure error)
        reply({"ready": False, "error": f"prepare: {type(exc).__name__}: {exc}"})
        return
    reply({"ready": True, "prepare_s": round(time.monotonic() - started, 4)})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            result = OPS[req["op"]](req)
        except Exception as exc:  # a request the server cannot serve is an error reply, never a crash
            result = {"error": f"{type(exc).__name__}: {exc}"}
            reap_all()
        reply(result)


if __name__ == "__main__":
    main()
