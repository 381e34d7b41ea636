"""Multi-turn samples in the learner: the loss is over the model's tokens only (an episode's
observation tokens are no target), the advantage is one per episode, and staleness counts from the
episode's oldest token."""

import pytest
import torch

from relayrl.learner.algorithms import policy_loss
from relayrl.learner.intake import group_staleness
from relayrl.learner.spec import AlgoSpec, model_tokens, shaped_rewards
from relayrl.learner.tokens import build_batch
from relayrl.learner.update import prepare, update
from relayrl.wire import common_pb2

PROMPT = [1, 9, 14]
# turn 1 (model) | observation | turn 2 (model), as an actor's episode lays them out
COMPLETION = [10, 11, 12, 15, 16, 13, 2]
MASK = [1, 1, 1, 0, 0, 1, 1]
LOGPROBS = [-1.0, -2.0, -3.0, 0.0, 0.0, -4.0, -5.0]
VERSIONS = [4, 4, 4, 4, 4, 5, 5]


def spec(**kw) -> AlgoSpec:
    base = dict(name="grpo", clip_low=0.2, clip_high=0.2, loss_agg="token_mean", dynamic_sampling=False,
                overlong_buffer=0, overlong_penalty=1.0, max_len=4, adv_eps=1e-4, kl_beta=0.0, kl_estimator="k3",
                objective="naive", tis_cap=None)
    return AlgoSpec(**{**base, **kw})


def episode(i: int, mask=MASK) -> common_pb2.Sample:
    return common_pb2.Sample(sample_id=f"g/{i}", prompt_token_ids=PROMPT, completion_token_ids=COMPLETION,
                             logprobs=LOGPROBS, versions=VERSIONS, loss_mask=mask, turns=2)


def test_build_batch_masks_observation_tokens_out():
    batch = build_batch([(PROMPT, COMPLETION, LOGPROBS, MASK), (PROMPT, [10, 2], [-1.0, -1.0])], pad_id=0)
    # logits at position t predict token t + 1: the completion's targets start at len(prompt) - 1
    assert batch.loss_mask[0].tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1]
    assert batch.behaviour_logprobs[0].tolist() == [0, 0, -1, -2, -3, 0, 0, -4, -5]
    assert batch.targets[0].tolist() == [9, 14, *COMPLETION]
    assert batch.loss_mask[1].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]  # no mask: every completion token
    with pytest.raises(ValueError, match="row 0: 7 tokens but a loss mask of 2"):
        build_batch([(PROMPT, COMPLETION, LOGPROBS, [1, 0])], pad_id=0)


def test_model_tokens_and_overlong_shaping_count_the_models_tokens_only():
    assert model_tokens(episode(0)) == 5
    assert model_tokens(common_pb2.Sample(completion_token_ids=[1, 2, 3])) == 3
    group = common_pb2.Group(samples=[episode(0), episode(1)],
                             scores=[common_pb2.Score(outcome=common_pb2.OUTCOME_PASS, reward=1.0)] * 2)
    # max_len 7 with a buffer of 2: 5 model tokens are within it (7 completion tokens would not be)
    assert shaped_rewards(group, spec(max_len=7, overlong_buffer=2))[2] == [1.0, 1.0]


def test_prepare_gives_one_advantage_per_episode_and_counts_model_tokens():
    group = common_pb2.Group(samples=[episode(0), episode(1), episode(2)], scores=[
        common_pb2.Score(outcome=common_pb2.OUTCOME_PASS, reward=1.0),
        common_pb2.Score(outcome=common_pb2.OUTCOME_FAIL, reward=0.0),
        common_pb2.Score(outcome=common_pb2.OUTCOME_INFRA_ERROR)])  # an infra error is in no advantage
    rows = prepare([group], spec())
    assert len(rows.rows) == 2 and rows.rows[0][3] == MASK
    assert rows.advantages == pytest.approx([0.7071, -0.7071], abs=1e-3)
    assert rows.lengths == [5, 5]


def test_staleness_counts_from_the_episodes_oldest_token():
    group = common_pb2.Group(samples=[episode(0)])
    assert group_staleness(group, version=6) == 2  # its first turn was sampled by version 4


def test_the_loss_has_no_gradient_at_observation_tokens():
    batch = build_batch([(PROMPT, COMPLETION, LOGPROBS, MASK)] * 2, pad_id=0)
    logp = batch.behaviour_logprobs.clone().requires_grad_(True)  # on-policy: ratio 1, no clipping
    loss, _ = policy_loss(logp, batch.behaviour_logprobs, torch.tensor([1.0, -1.0]), batch.loss_mask, spec(),
                          num_rows=2, num_tokens=10.0)
    loss.backward()
    assert bool((logp.grad[batch.loss_mask == 0] == 0).all())
    assert bool((logp.grad[batch.loss_mask == 1] != 0).all())


def test_an_update_trains_an_episode_on_its_model_tokens(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    group = common_pb2.Group(samples=[episode(0), episode(1)], scores=[
        common_pb2.Score(outcome=common_pb2.OUTCOME_PASS, reward=1.0),
        common_pb2.Score(outcome=common_pb2.OUTCOME_FAIL, reward=0.0)])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stats = update(model, opt, None, prepare([group], spec()), spec(), 1.0, pad_id=0, grad_clip=1.0)
    assert stats["tokens"] == 10  # five model tokens per episode, the observations not counted
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
