"""LoRA end to end on the tiny model: the learner trains adapters, publishes only them over its real
gRPC service, an actor's engine merges them on load and samples exactly what the learner's merged
model samples; checkpoints keep the adapter (PEFT's format) and a merged Hugging Face export, and
resume."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from relayrl.config import LearnerConfig, LoraConfig, LossConfig, OptimConfig, PublishConfig, RunConfig, SamplingConfig
from relayrl.learner.server import serve
from relayrl.learner.trainer import Learner
from relayrl.replay import MemoryReplayQueue
from relayrl.rollout.engine import TransformersEngine
from relayrl.weights.lora import is_adapter
from relayrl.weights.source import GrpcWeightSource
from relayrl.weights.store import serialize
from tests.integration.test_resume import groups

GREEDY = SamplingConfig(group_size=2, max_new_tokens=8, top_k=1)
PROMPTS = ["12?", "31353?", "0000000?", "987?"]


def _learner(model_dir, out):
    cfg = RunConfig(learner=LearnerConfig(
        batch_groups=2, lora=LoraConfig(rank=4, alpha=8.0), optim=OptimConfig(lr=0.05), loss=LossConfig(kl_beta=0.05),
        weights=PublishConfig(wire_dtype="float32")))
    return Learner(cfg, MemoryReplayQueue(), str(model_dir), out)  # restart is resume: a checkpoint in out is continued


@pytest.fixture
def trained(tiny_model_dir, tmp_path):
    learner = _learner(tiny_model_dir, tmp_path)
    for k in range(3):  # three steps with a large lr: the adapters (B starts at 0) move the policy
        learner.train_step(groups(2, seed=20 + k))
        learner.step += 1
        learner.version += 1
    return learner


def test_only_the_adapters_train_and_travel(trained, tiny_model_dir):
    policy = trained.policy
    assert policy.lora and policy.ref.shared  # the KL reference is the policy with its adapters off
    from relayrl.learner.tokens import build_batch, token_logprobs
    from relayrl.learner.update import prepare

    batch = build_batch(prepare(groups(2, seed=9), policy.spec).rows, 0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        initial, _ = token_logprobs(base, batch, 1.0)
        trained_logp, _ = token_logprobs(policy.model, batch, 1.0)
    torch.testing.assert_close(policy.ref.logprobs(batch, 1.0), initial, rtol=0, atol=1e-5)  # no second copy
    assert float((trained_logp - initial).abs().max()) > 1e-3
    assert policy.model.training  # the reference's eval-mode forward left the policy in train mode
    assert all(".lora_" in n for n, p in policy.model.named_parameters() if p.requires_grad)
    full = len(serialize(AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict(), "float32"))
    server, port = serve(trained, 0)
    try:
        trained.publish()
        source = GrpcWeightSource(f"127.0.0.1:{port}")
        version, state, _ = source.fetch(-1)
        source.close()
    finally:
        server.stop(0)
    assert version == 3 and is_adapter(state)
    assert len(state) == 2 * 7 * 2  # A and B of 7 modules in each of 2 layers
    assert source.bytes_received <= 0.05 * full, (source.bytes_received, full)
    print(f"adapter bytes on the wire: {source.bytes_received} of a {full}-byte full model")


def test_actor_greedy_tokens_equal_the_learners_merged_model(trained, tiny_model_dir):
    actor = TransformersEngine(str(tiny_model_dir))
    before = [c.token_ids for g in actor.generate(PROMPTS, GREEDY, seed=0) for c in g]
    trained.publish()
    version, state = 3, trained.store.get(-1)
    from relayrl.weights.store import deserialize

    actor.load_weights(deserialize(state.payload), version)
    after = actor.generate(PROMPTS, GREEDY, seed=0)
    final = trained.checkpoint()  # the merged Hugging Face export
    learner_side = TransformersEngine(str(final)).generate(PROMPTS, GREEDY, seed=0)
    tokens = [c.token_ids for g in after for c in g]
    assert tokens == [c.token_ids for g in learner_side for c in g]
    assert tokens != before  # the update changed what the policy says
    for a, b in zip([c for g in after for c in g], [c for g in learner_side for c in g]):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    # and again: a second version merges onto the base, not onto the first merge
    actor.load_weights(deserialize(state.payload), version + 1)
    assert [c.token_ids for g in actor.generate(PROMPTS, GREEDY, seed=0) for c in g] == tokens


def test_checkpoint_keeps_the_adapter_and_resumes(trained, tiny_model_dir):
    from peft import PeftModel

    final = trained.checkpoint()
    assert (final / "adapter" / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, final / "adapter").eval()  # PEFT loads the adapter as saved
    merged = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 9, 12, 20, 5, 7]])
    with torch.no_grad():
        torch.testing.assert_close(peft(input_ids=ids).logits, merged(input_ids=ids).logits, rtol=0, atol=1e-5)
    resumed = _learner(tiny_model_dir, trained.out)
    assert resumed.step == 3
    for (name, p), q in zip(trained.policy.model.named_parameters(), resumed.policy.model.parameters()):
        assert torch.equal(p, q), name
    assert resumed.policy.optimizer.state_dict()["state"][0]["step"] == 3
