"""benchmarks/gpu.sh and gpu.py on this CPU: argument handling, the refusal without a GPU, and the
configs they generate (the GPU one and the dry run's) validate. The dry run itself is in
tests/e2e/test_gpu_dry_run.py."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relayrl.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu  # noqa: E402  (benchmarks/ is not a package)


def _sh(*args):
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "unknown option --bogus"), (["--steps", "0"], "--steps must be a positive integer"),
    (["--steps", "x"], "--steps must be a positive integer"), (["--out"], "--out needs a value"),
])
def test_bad_arguments_are_refused_in_one_line(args, message):
    result = _sh(*args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_and_the_refusal_without_a_gpu():
    result = _sh("--help")
    assert result.returncode == 0 and "--dry-run" in result.stdout and "H200" in result.stdout
    if shutil.which("nvidia-smi") is None:  # this machine
        result = _sh()
        assert result.returncode == 2 and "no nvidia-smi: this needs a CUDA GPU (try --dry-run)" in result.stderr


def test_the_generated_configs_validate(tmp_path):
    real = RunConfig.parse(gpu.make_config(False, tmp_path / "smollm2", 60, 29500))
    assert real.learner.device == "cuda" and real.learner.precision == "bf16" and real.learner.fsdp.enabled
    assert real.rollout.engine.type == "vllm" and real.rollout.engine.dtype == "bfloat16"
    assert real.learner.weights.nccl.port == 29500 and real.learner.weights.nccl.backend == "nccl"
    assert real.task.source.type == "reasoning_gym" and real.learner.steps == 60
    dry = RunConfig.parse(gpu.make_config(True, None, 3, 29501))
    assert dry.learner.device == "cpu" and dry.learner.fsdp.enabled and dry.learner.weights.nccl.backend == "gloo"
    assert dry.rollout.engine.type == "transformers" and dry.model.path is None


def test_gpu_py_needs_a_model_or_the_dry_run(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "--model DIR is required (or --dry-run)" in result.stderr
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run", "--steps", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--steps must be at least 1" in result.stderr
