"""Updates while generating (transformers engine): pause every k tokens, load, resume; per-token versions."""

import torch

from relayrl.config import SamplingConfig
from relayrl.rollout.engine import TransformersEngine


def test_a_mid_generation_update_changes_the_version_and_the_policy_of_later_tokens(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    zeros = {k: torch.zeros_like(v) for k, v in engine.model.state_dict().items()}
    calls = []

    def between():
        calls.append(engine.version)
        if engine.version == 0:
            engine.load_weights(zeros, version=1)

    sampling = SamplingConfig(group_size=3, max_new_tokens=8)
    groups = engine.generate(["12?", "98765?"], sampling, seed=0, between=between, update_every=3)
    uniform = -torch.log(torch.tensor(float(len(engine.tokenizer)))).item()
    assert calls[:2] == [0, 1]  # called every 3 tokens: at t=3 it loads, at t=6 nothing is newer
    for c in (c for g in groups for c in g):
        assert c.versions == [0] * min(3, len(c.token_ids)) + [1] * max(0, len(c.token_ids) - 3)
        # all-zero weights give uniform logits: tokens after the update come from the new policy
        assert all(abs(lp - uniform) < 1e-5 for lp in c.logprobs[3:])
    # and the tokens before it from the old one (a random model is far from uniform)
    assert any(abs(lp - uniform) > 1e-2 for g in groups for c in g for lp in c.logprobs[:3])


def test_without_update_every_between_is_never_called(tiny_model_dir):
    engine = TransformersEngine(str(tiny_model_dir))
    engine.generate(["1?"], SamplingConfig(group_size=2, max_new_tokens=6), between=lambda: 1 / 0)
