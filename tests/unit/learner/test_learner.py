"""The learner's admission bound, its drops (stale, duplicate, infra error) and one GRPO step."""

import pytest
import torch

from relayrl.config import LearnerConfig, LossConfig, PublishConfig, RunConfig
from relayrl.learner.trainer import Learner
from relayrl.replay import MemoryReplayQueue
from relayrl.replay.keys import StreamKeys
from relayrl.wire import common_pb2
from tests.unit.learner.test_intake import make_group


@pytest.fixture
def learner(tiny_model_dir, tmp_path):
    cfg = RunConfig(learner=LearnerConfig(batch_groups=2, max_staleness=1, weights=PublishConfig(wire_dtype="float32")))
    return Learner(cfg, MemoryReplayQueue(), str(tiny_model_dir), tmp_path)


def test_admit_fills_the_prompt_stream_up_to_the_bound(learner):
    assert learner.admit() == 4
    assert learner.admit() == 0
    keys = StreamKeys("default")
    assert learner.queue.length(keys.prompts) == 4
    entry = learner.queue.lease(keys.prompts, StreamKeys.ACTORS, "a", count=1)[0]
    prompt = common_pb2.Prompt.FromString(entry.payload)
    assert prompt.kind == "math" and prompt.reference.isdigit() and prompt.text.endswith("?")


def test_collect_drops_stale_duplicate_and_infra_error_groups(learner):
    keys = StreamKeys("default")
    learner.version = 3
    def put(g):
        return learner.queue.put(keys.groups, g.SerializeToString())

    put(make_group("stale", [1, 2], [1.0, 0.0]))             # oldest token 2 versions old > max_staleness 1
    put(make_group("ok-1", [2, 3], [1.0, 0.0]))
    put(make_group("ok-1", [2, 3], [1.0, 0.0]))              # duplicate delivery
    put(make_group("broken", [3, 3], [None, 1.0]))           # one sample left after the infra error
    put(make_group("ok-2", [3, 3, 3], [None, 1.0, 0.0]))     # infra-error sample excluded, two remain
    batch = learner.collect()
    assert [g.group_id for _, g in batch] == ["ok-1", "ok-2"]
    assert learner.counters.groups_dropped == {"stale": 1, "infra_error": 1, "duplicate": 1, "zero_variance": 0,
                                              "epoch": 0}
    assert learner.counters.max_version_lag == 2
    assert learner.intake.dropped == {"stale": "stale", "broken": "infra_error"}
    # nothing is acknowledged before the checkpoint that records it (drops included)
    assert learner.queue.pending(keys.groups, StreamKeys.LEARNER) == 5
    learner.checkpoint()
    assert learner.queue.pending(keys.groups, StreamKeys.LEARNER) == 2  # the batch, not yet trained


def test_train_step_moves_the_policy_toward_rewarded_samples(learner):
    group = make_group("g", [0, 0, 0, 0], [1.0, 0.0, 0.0, 0.0])
    group.samples[0].completion_token_ids[:] = [12, 2]
    before = {k: v.clone() for k, v in learner.policy.model.state_dict().items()}
    stats = learner.train_step([group])
    assert stats["reward_mean"] == 0.25 and stats["tokens"] == 8 and stats["staleness_max"] == 0
    changed = [k for k, v in learner.policy.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed


def test_checkpoint_acknowledges_the_groups_it_contains(learner, tmp_path):
    from transformers import AutoModelForCausalLM

    keys = StreamKeys("default")
    learner.queue.put(keys.groups, make_group("a", [0, 0], [1.0, 0.0]).SerializeToString())
    learner.queue.put(keys.groups, make_group("b", [0, 0], [0.0, 1.0]).SerializeToString())
    learner.run(steps=1)
    assert learner.queue.pending(keys.groups, StreamKeys.LEARNER) == 0
    assert learner.queue.get_value(keys.version) == "1"
    ckpt = tmp_path / "checkpoints" / "step-000001"
    reloaded = AutoModelForCausalLM.from_pretrained(ckpt)
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, learner.policy.model.state_dict()[name]), name


def test_paused_admission_admits_nothing_until_resumed(learner):
    keys = StreamKeys("default")
    learner.queue.set_value(keys.paused, "1")
    assert learner.admit() == 0
    learner.queue.set_value(keys.paused, "0")
    assert learner.admit() == 4


def test_dapo_dynamic_sampling_drops_zero_variance_groups(tiny_model_dir, tmp_path):
    cfg = RunConfig(learner=LearnerConfig(loss=LossConfig(algorithm="dapo", overlong_buffer=0), batch_groups=1))
    learner = Learner(cfg, MemoryReplayQueue(), str(tiny_model_dir), tmp_path)
    keys = StreamKeys("default")
    learner.queue.put(keys.groups, make_group("same", [0, 0, 0], [1.0, 1.0, 1.0]).SerializeToString())
    learner.queue.put(keys.groups, make_group("mixed", [0, 0, 0], [1.0, 0.0, 1.0]).SerializeToString())
    assert [g.group_id for _, g in learner.collect()] == ["mixed"]
    assert learner.counters.groups_dropped["zero_variance"] == 1 and learner.intake.dropped == {"same": "zero_variance"}
    assert learner.admission.consumed == 1  # a dropped group frees its admission slot


def test_prepare_applies_overlong_shaping_before_the_advantages():
    from relayrl.learner.spec import resolve
    from relayrl.learner.update import prepare

    spec = resolve(LossConfig(algorithm="dr_grpo", overlong_buffer=2), max_new_tokens=4)
    group = make_group("g", [0, 0], [1.0, 1.0])
    group.samples[1].completion_token_ids[:] = [10, 11, 12, 2]  # 4 tokens: the full penalty, -1
    group.samples[1].logprobs[:] = [-3.0] * 4
    rows = prepare([group], spec)
    assert rows.rewards == [1.0, 1.0] and rows.shaped == [1.0, 0.0] and rows.lengths == [2, 4]
    assert rows.advantages == pytest.approx([0.5, -0.5])  # Dr.GRPO: shaped reward minus the group mean


def test_decoupled_update_in_minibatches_logs_offpolicy_statistics(learner):
    from dataclasses import replace

    from relayrl.learner.update import prepare, update

    spec = replace(learner.spec, objective="decoupled", tis_cap=1.1)
    groups = [make_group(f"g{k}", [0, 0, 0, 0], [1.0, 0.0, 0.0, float(k % 2)]) for k in range(4)]
    stats = update(learner.policy.model, learner.policy.optimizer, None, prepare(groups, spec), spec, 1.0,
                   learner.policy.tokenizer.pad_token_id, 1.0, minibatches=2)
    # behaviour logprobs of -3 are not the learner's (about -2.8): uneven weights, some above the cap
    assert 0 < stats["ess"] < 1 and stats["mismatch_kl"] > 0 and stats["tis_clip_frac"] > 0
    assert stats["response_length_mean"] == 2 and stats["response_length_max"] == 2
    assert stats["ratio_mean"] != 1.0  # the second minibatch's ratio is against the pre-update policy
    for key in ("entropy", "clip_frac", "clip_frac_high", "grad_norm", "loss", "adv_abs_mean", "lr"):
        assert key in stats


def test_reward_components_are_logged_apart(learner):
    from relayrl.learner.update import prepare, update

    group = make_group("g", [0, 0, 0, 0], [1.5, 0.5, 0.0, None])  # the infra error enters no figure
    for score, (acc, fmt) in zip(group.scores, [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]):
        score.components.update(accuracy=acc, format=fmt)
    rows = prepare([group], learner.spec)
    assert rows.components == {"accuracy": [1.0, 0.0, 0.0], "format": [1.0, 1.0, 0.0]}
    policy = learner.policy
    stats = update(policy.model, policy.optimizer, None, rows, learner.spec, 1.0, policy.tokenizer.pad_token_id, 1.0)
    assert stats["reward_accuracy_mean"] == pytest.approx(1 / 3) and stats["reward_format_mean"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("algorithm,objective", [("grpo", "naive"), ("dr_grpo", "decoupled"), ("rloo", "naive")])
def test_micro_batches_change_the_memory_not_the_update(tiny_model_dir, algorithm, objective):
    from dataclasses import replace

    import torch
    from transformers import AutoModelForCausalLM

    from relayrl.learner.spec import resolve
    from relayrl.learner.update import prepare, update
    from tests.integration.test_resume import groups

    spec = replace(resolve(LossConfig(algorithm=algorithm, kl_beta=0.05), 16), objective=objective,
                   tis_cap=2.0 if objective == "decoupled" else None)
    rows = prepare(groups(4, seed=5), spec)  # 16 rows of different lengths
    results = []
    for micro in (None, 3):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        stats = update(model, opt, None, rows, spec, 1.0, 0, 1.0, minibatches=2, ref_model=ref, micro_batch_rows=micro)
        results.append((model.state_dict(), stats))
    (whole, s_whole), (micro, s_micro) = results
    for name, tensor in whole.items():
        torch.testing.assert_close(micro[name], tensor, rtol=0, atol=1e-5, msg=name)
    for name in ("loss", "entropy", "clip_frac", "kl", "mismatch_kl", "ess", "grad_norm", "is_weight_max"):
        assert s_micro[name] == pytest.approx(s_whole[name], rel=1e-4, abs=1e-6), name
