#!/usr/bin/env bash
# Set up a fresh Debian machine with Python 3.11: the apt packages the services and tests use,
# and a .venv at the repository root with relayrl installed (editable) and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts no redis here and we want none: every run and test starts a private one.

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and alone, pinned: this machine's pip resolves torch==2.13.0 to its CPU build,
# where a loose requirement could pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e '.[dev]'
echo "set-up done: .venv ready, redis-server at $(command -v redis-server)"
