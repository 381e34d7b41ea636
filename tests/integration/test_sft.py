"""`relayrl sft` and `relayrl distill` on the tiny model: SFT makes the example responses its
greedy outputs; rejection sampling keeps exactly the teacher samples the math verifier passes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from relayrl.config import TaskConfig
from relayrl.config.task import ProceduralSource
from relayrl.tasks import stream


def task_rows(n: int, seed: int = 3) -> list[dict]:
    it = stream(TaskConfig(source=ProceduralSource(name="add_digits"), seed=seed))
    return [{"prompt": t.prompt, "response": t.answer, "answer": t.answer} for t in (next(it) for _ in range(n))]


def greedy(model_dir, prompts: list[str], max_new_tokens: int = 5) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    out = []
    for p in prompts:
        ids = torch.tensor([tok(tok.bos_token + p, add_special_tokens=False)["input_ids"]])
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=False))
    return out


@pytest.fixture(scope="module")
def sft_model(tiny_model_dir, tmp_path_factory):
    """The tiny model after `relayrl sft` on six add_digits examples (through the CLI)."""
    rows = task_rows(6)
    root = tmp_path_factory.mktemp("sft")
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": r["prompt"], "response": r["response"]}) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, "-m", "relayrl.cli", "sft", str(tiny_model_dir), str(data),
                           "--out", str(root / "model"), "--epochs", "40", "--batch-size", "6", "--lr", "3e-3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return root / "model", rows, json.loads(proc.stdout.strip().splitlines()[-1])


def test_sft_makes_the_example_responses_the_greedy_outputs(tiny_model_dir, sft_model):
    model_dir, rows, result = sft_model
    prompts = [r["prompt"] for r in rows]
    wanted = [r["response"] + "<eos>" for r in rows]
    assert greedy(tiny_model_dir, prompts) != wanted  # the random model does not already answer them
    assert result["examples"] == 6 and result["steps"] == 40
    assert result["last_epoch_loss"] < 0.1 * result["first_epoch_loss"]
    assert greedy(model_dir, prompts) == wanted


def test_sft_masks_the_prompt_and_trains_on_response_and_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    from relayrl.sft.train import encode_example

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ids, labels = encode_example(tok, "3+5=", "8")
    assert tok.convert_ids_to_tokens(ids) == ["<bos>", "3", "+", "5", "=", "8", "<eos>"]
    assert labels == [-100] * 5 + ids[5:]


def test_sft_rejects_malformed_data(tiny_model_dir, tmp_path):
    from relayrl.sft.train import read_jsonl

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1="}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_jsonl(bad)


def test_distill_keeps_exactly_the_samples_the_verifier_passes(sft_model, tiny_model_dir, tmp_path):
    from relayrl.config import RewardConfig
    from relayrl.reward.verifiers.math import MathVerifier

    teacher, rows, _ = sft_model
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"], "answer": r["answer"]}) + "\n" for r in rows[:4]))
    out = tmp_path / "distill"
    # temperature 1.5 makes the trained teacher wrong sometimes, so both outcomes occur
    proc = subprocess.run([sys.executable, "-m", "relayrl.cli", "distill", str(teacher), "--prompts", str(prompts),
                           "--out", str(out), "--student", str(tiny_model_dir), "--k", "8", "--max-new-tokens", "4",
                           "--temperature", "1.5", "--top-p", "1.0", "--epochs", "2", "--lr", "1e-3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    kept = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert len(samples) == summary["samples"] == 4 * 8
    verifier = MathVerifier(RewardConfig())
    try:
        passed = [{"prompt": s["prompt"], "response": s["response"]} for s in samples
                  if verifier.score(s["response"], s["answer"]).outcome == "pass"]
    finally:
        verifier.close()
    assert kept == passed and summary["kept"] == len(kept)
    assert 0 < len(kept) < len(samples), "the teacher should be right sometimes and wrong sometimes"
    assert all(s["outcome"] in ("pass", "fail") for s in samples)
    assert summary["student"] == str(out / "student") and summary["sft"]["examples"] == len(kept)
    assert (out / "student" / "config.json").exists()
    greedy(out / "student", [rows[0]["prompt"]])  # transformers loads the student


def test_distill_prompts_from_a_task_and_bad_files(tmp_path):
    from relayrl.sft.distill import load_prompts

    rows = load_prompts("task:add_digits", 3, seed=3)
    assert rows == [{"prompt": r["prompt"], "answer": r["answer"]} for r in task_rows(3)]
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "1+1=", "answer": 2}\n')
    with pytest.raises(ValueError, match="p.jsonl:1"):
        load_prompts(str(bad), 5)
