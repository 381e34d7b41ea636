"""The transformers engine: groups with behaviour logprobs the learner reproduces exactly."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from relayrl.config import SamplingConfig
from relayrl.learner.tokens import build_batch, token_logprobs
from relayrl.rollout.engine import TransformersEngine, filter_logits


def test_tiny_model_loads_with_transformers_and_has_distinct_pad_and_eos(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.hidden_size // model.config.num_attention_heads == 64
    assert tok.pad_token_id != tok.eos_token_id
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    ids = tok("<bos>31353?<answer>3</answer>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "<bos>31353?<answer>3</answer>"


def test_group_shape_versions_and_finish_reasons(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    engine.version = 7
    sampling = SamplingConfig(group_size=4, max_new_tokens=6)
    groups = engine.generate(["12?", "98765?"], sampling, seed=1)
    assert [len(g) for g in groups] == [4, 4]
    for prompt, group in zip(["12?", "98765?"], groups):
        for c in group:
            assert c.prompt_token_ids == engine.encode(prompt)
            assert len(c.token_ids) == len(c.logprobs) == len(c.versions) <= 6
            assert set(c.versions) == {7}
            assert all(lp <= 0 for lp in c.logprobs)
            if c.finish_reason == "stop":
                assert c.token_ids[-1] == engine.eos_id and engine.eos_id not in c.token_ids[:-1]
            else:
                assert len(c.token_ids) == 6 and engine.eos_id not in c.token_ids


def test_seeded_generation_is_reproducible(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    sampling = SamplingConfig(group_size=3, max_new_tokens=5)
    a = engine.generate(["555?"], sampling, seed=3)[0]
    b = engine.generate(["555?"], sampling, seed=3)[0]
    assert [c.token_ids for c in a] == [c.token_ids for c in b]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_learner_recomputes_the_behaviour_logprobs(tiny_model_dir, temperature):
    engine = TransformersEngine(str(tiny_model_dir))
    sampling = SamplingConfig(group_size=4, max_new_tokens=8, temperature=temperature)
    groups = engine.generate(["1?", "31353?", "0000000?"], sampling, seed=0)  # prompts of different lengths
    rows = [(c.prompt_token_ids, c.token_ids, c.logprobs) for g in groups for c in g]
    batch = build_batch(rows, engine.pad_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, temperature)
    diff = ((logp - batch.behaviour_logprobs) * batch.loss_mask).abs().max()
    assert float(diff) < 1e-4


@pytest.mark.parametrize(("top_k", "top_p"), [(0, 0.8), (5, 1.0), (6, 0.9)])
def test_learner_recomputes_the_behaviour_logprobs_under_top_k_and_top_p(tiny_model_dir, top_k, top_p):
    """The learner scores the filtered distribution the engine sampled from: without the filter
    each logprob would be the token's share of the whole vocabulary, below the engine's."""
    engine = TransformersEngine(str(tiny_model_dir))
    sampling = SamplingConfig(group_size=4, max_new_tokens=8, temperature=0.8, top_k=top_k, top_p=top_p)
    groups = engine.generate(["1?", "31353?", "0000000?"], sampling, seed=0)
    rows = [(c.prompt_token_ids, c.token_ids, c.logprobs) for g in groups for c in g]
    batch = build_batch(rows, engine.pad_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, 0.8, top_k=top_k, top_p=top_p)
        unfiltered, _ = token_logprobs(model, batch, 0.8)
    mask = batch.loss_mask.bool()
    assert float((logp - batch.behaviour_logprobs)[mask].abs().max()) < 1e-4
    assert float((batch.behaviour_logprobs - unfiltered)[mask].min()) > -1e-6  # the bias the filter removes
    assert float((batch.behaviour_logprobs - unfiltered)[mask].max()) > 1e-2


def test_load_weights_changes_the_policy_and_version(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    state = {k: torch.zeros_like(v) for k, v in engine.model.state_dict().items()}
    engine.load_weights(state, version=3)
    assert engine.version == 3
    # all-zero weights give uniform logits: every token has logprob -log(V)
    c = engine.generate(["1?"], SamplingConfig(group_size=2, max_new_tokens=3), seed=0)[0][0]
    assert c.logprobs[0] == pytest.approx(-torch.log(torch.tensor(float(len(engine.tokenizer)))).item(), abs=1e-5)
    with pytest.raises(ValueError, match="unexpected"):
        engine.load_weights({"nope.weight": torch.zeros(1)}, version=4)


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2, top_p=1.0)[0, 2:]).all()
    kept = ~torch.isinf(filter_logits(logits, top_k=0, top_p=0.8))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8
    assert torch.equal(filter_logits(logits, 0, 1.0), logits)
