"""The patch in a model's response: a unified diff in a fenced block, or raw.

Extraction only (text in, text out, on the host); the patch is applied inside the sandbox by the
harness (`harness.py`: `git apply`, falling back to `patch`), so a hostile patch (paths outside
the repository, symlinks) never touches the host's filesystem.

Rules, first match wins: the last ```diff or ```patch block; else the last fenced block that
looks like a unified diff; else the response from its first diff header (`diff --git`, or a
`--- ` line followed by `+++ `) to its end. A response with none of these has no patch: the
sample fails (the model's fault), it is not an infrastructure error.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_HEADER = re.compile(r"^(diff --git |--- )", re.MULTILINE)
_PAIR = re.compile(r"--- [^\n]*\n\+\+\+ ")


def looks_like_diff(text: str) -> bool:
    """Has a file header pair and at least one hunk."""
    return bool(re.search(r"^--- .*\n\+\+\+ ", text, re.MULTILINE) and re.search(r"^@@ ", text, re.MULTILINE)) \
        or bool(re.search(r"^diff --git ", text, re.MULTILINE))


def extract_patch(response: str) -> str | None:
    """The patch in `response` (ending with a newline), or None when it has none."""
    blocks = _FENCE.findall(response)
    chosen = next((body for lang, body in reversed(blocks) if lang.lower() in ("diff", "patch", "udiff")), None)
    if chosen is None:
        chosen = next((body for _, body in reversed(blocks) if looks_like_diff(body)), None)
    if chosen is None:
        starts = (m.start() for m in _HEADER.finditer(response)
                  if m.group(1) == "diff --git " or _PAIR.match(response, m.start()))
        start = next(starts, None)
        chosen = response[start:] if start is not None else None
    if chosen is None or not chosen.strip():
        return None
    return chosen if chosen.endswith("\n") else chosen + "\n"


def touched_paths(patch: str) -> list[str]:
    """Repository paths a patch names in its headers (a/ b/ prefixes stripped), for reports."""
    paths: list[str] = []
    for line in patch.splitlines():
        if line.startswith(("--- ", "+++ ")):
            name = line[4:].split("\t", 1)[0].strip()
            if name != "/dev/null":
                name = name[2:] if name[:2] in ("a/", "b/") else name
                if name not in paths:
                    paths.append(name)
    return paths
