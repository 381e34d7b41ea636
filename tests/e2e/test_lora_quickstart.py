"""End to end: the quickstart with LoRA (configs/quickstart-lora.yaml) learns across processes,
with only the adapters on the wire to the actors, and ends in a checkpoint with the adapter and a
merged model transformers loads."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_quickstart_with_lora_learns_and_ships_only_adapters(tmp_path):
    out = tmp_path / "lora"
    result = subprocess.run([sys.executable, "-m", "relayrl.cli", "train", str(ROOT / "configs" / "quickstart-lora.yaml"),
                             "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    print("quickstart-lora summary:", json.dumps(summary))
    assert summary["steps"] == 300
    assert summary["reward_last"] - summary["reward_first"] >= 0.1  # measured: 0.033 -> 0.222
    full = (out / "init-model" / "model.safetensors").stat().st_size
    sizes = [int(n) for actor in ("actor-0", "actor-1")
             for n in re.findall(r"loaded version \d+ in [0-9.]+ s \((\d+) bytes", (out / "logs" / f"{actor}.log").read_text())]
    final = out / "checkpoints" / "step-000300"
    assert (final / "adapter" / "adapter_model.safetensors").exists()
    from safetensors.torch import load_file

    # only the adapters travel, in the config's fp32 wire dtype: rank-8 adapters on every linear
    # layer of this 2-layer, hidden-128 model are 8.9% of it (the 5% bound holds at rank 4,
    # tests/integration/test_lora.py, and for any model much wider than its rank)
    adapter = sum(t.numel() * 4 for t in load_file(final / "adapter" / "adapter_model.safetensors").values())
    assert sizes and set(sizes) == {adapter} and adapter < 0.1 * full, (set(sizes), adapter, full)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(final)
    assert all(torch.isfinite(t).all() for t in merged.state_dict().values())
