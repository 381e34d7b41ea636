"""The engine's multi-turn entry: continuing token-id sequences (never re-tokenised), each to its
own budget, stopping at EOS or at a stop string, with logprobs the learner reproduces."""

import torch
from transformers import AutoModelForCausalLM

from relayrl.config import SamplingConfig
from relayrl.learner.tokens import build_batch, token_logprobs
from relayrl.rollout.engine import TransformersEngine


def test_sequences_are_continued_to_their_own_budgets(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    engine.version = 4
    seqs = [engine.encode("12?") + [engine.eos_id] + engine.encode_continuation("34"), engine.encode("9?")]
    outs = engine.generate_from_ids(seqs, SamplingConfig(group_size=2), [5, 2], seed=0)
    assert [c.prompt_token_ids for c in outs] == seqs
    assert len(outs[0].token_ids) <= 5 and len(outs[1].token_ids) <= 2
    for c in outs:
        assert len(c.token_ids) == len(c.logprobs) == len(c.versions) and set(c.versions) == {4}


def test_a_stop_string_ends_the_turn_at_the_token_that_completes_it(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    sampling = SamplingConfig(group_size=2, max_new_tokens=20)
    outs = engine.generate_from_ids([engine.encode("5?")] * 16, sampling, [20] * 16, stop=("1",), seed=2)
    stopped = [c for c in outs if c.finish_reason == "stop" and c.token_ids[-1] != engine.eos_id]
    assert stopped, "no completion met the stop string"
    for c in stopped:
        assert c.text.endswith("1") and "1" not in c.text[:-1]
    for c in outs:
        if c.finish_reason == "length":
            assert len(c.token_ids) == 20 and "1" not in c.text


def test_the_learner_recomputes_the_logprobs_of_continued_sequences(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    seqs = [engine.encode("31353?") + engine.encode_continuation("<answer>3</answer>"), engine.encode("1?")]
    outs = engine.generate_from_ids(seqs, SamplingConfig(group_size=2, temperature=0.8), [6, 6], seed=1)
    batch = build_batch([(c.prompt_token_ids, c.token_ids, c.logprobs) for c in outs], engine.pad_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, 0.8)
    assert float(((logp - batch.behaviour_logprobs) * batch.loss_mask).abs().max()) < 1e-4
