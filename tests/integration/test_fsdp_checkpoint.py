"""The learner's policy under FSDP2 on two gloo processes: it publishes, checkpoints in shards, and
the checkpoint resumes in one process and exports a Hugging Face directory transformers loads.

Real processes with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT), the real
`Policy` (rank 0 trains, publishes and saves; rank 1 follows its commands), the real weight store
and torch.distributed.checkpoint. A one-process run of the same two batches is the reference: the
two-rank first step and the one-process resumed second step must land where it does."""

import os

import torch
import torch.multiprocessing as mp
from transformers import AutoModelForCausalLM

from relayrl.config import LearnerConfig, LossConfig, RunConfig
from relayrl.learner import checkpoint as ckpt
from relayrl.learner.spec import resolve
from relayrl.replay.private_redis import free_port
from relayrl.weights.store import WeightStore, deserialize
from tests.integration.test_resume import groups

CFG = RunConfig(learner=LearnerConfig(loss=LossConfig(kl_beta=0.05), micro_batch_rows=3, device="cpu"))
SPEC = resolve(CFG.learner.loss, CFG.rollout.sampling.max_new_tokens)
FIRST, SECOND = groups(3, seed=11), groups(3, seed=12)


def _policy(model_dir, start=None):
    from relayrl.learner.policy import Policy

    return Policy(CFG, SPEC, str(model_dir), start)


def _rank(rank: int, world: int, port: int, model_dir: str, path: str, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    policy = _policy(model_dir)
    local = {n: p.to_local().numel() for n, p in policy.model.named_parameters()}
    if rank == 0:
        policy.train(FIRST)
        item = policy.publish(WeightStore(), 1, "float32")
        policy.save(ckpt.Path(path), {"version": 1, "step": 1})
        policy.finish()
        torch.save({"payload": bytes(item.payload), "local": local}, out)
    else:
        assert policy.updater.follow() == 1
    dist.destroy_process_group()


def test_a_two_rank_checkpoint_resumes_on_one_rank_and_exports_a_hugging_face_model(tiny_model_dir, tmp_path):
    single = _policy(tiny_model_dir)
    single.train(FIRST)
    after_first = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.train(SECOND)
    after_second = single.model.state_dict()

    path, out = tmp_path / "step-000001", tmp_path / "rank0.pt"
    mp.spawn(_rank, args=(2, free_port(), str(tiny_model_dir), str(path), str(out)), nprocs=2, join=True)
    saved = torch.load(out)
    full = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    assert all(2 * n == full[name].numel() for name, n in saved["local"].items())  # sharded, not replicated
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["state", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "trainer_state.pt", "relayrl.json", *[p.name for p in path.iterdir() if p.name.startswith("special_tokens")]])
    assert ckpt.latest(tmp_path) == path and ckpt.read_state(path) == {"version": 1, "step": 1}

    published = deserialize(saved["payload"])  # gathered one tensor at a time on rank 0
    exported = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).state_dict()  # transformers loads it
    for name, tensor in after_first.items():
        torch.testing.assert_close(exported[name], tensor, rtol=0, atol=1e-5, msg=name)
        if name in published:
            assert torch.equal(published[name], exported[name]), name
    assert set(published) == set(exported) - {"lm_head.weight"}  # the tied head travels once

    resumed = _policy(tiny_model_dir, start=path)  # one process, from two ranks' shards
    for name, tensor in resumed.model.state_dict().items():
        assert torch.equal(tensor, exported[name]), name
    assert resumed.optimizer.state_dict()["state"][0]["step"] == 1  # AdamW's moments came back too
    resumed.train(SECOND)
    for name, tensor in after_second.items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=0, atol=1e-5, msg=name)


def _one_rank(rank: int, model_dir: str, path: str, out: str) -> None:
    from relayrl.learner.policy import Policy

    cfg = CFG.model_copy(deep=True)
    cfg.learner.fsdp.enabled = True  # a mesh of one: the multi-GPU code path in one process
    policy = Policy(cfg, SPEC, model_dir)
    assert type(policy.updater).__name__ == "DistributedUpdater"
    assert all(hasattr(p, "to_local") for p in policy.model.parameters())  # DTensors
    policy.train(FIRST)
    item = policy.publish(WeightStore(), 1, "float32")
    policy.save(ckpt.Path(path), {"version": 1, "step": 1})
    torch.save({"payload": bytes(item.payload)}, out)


def test_fsdp_on_one_rank_makes_the_same_update_and_checkpoint(tiny_model_dir, tmp_path):
    single = _policy(tiny_model_dir)
    single.train(FIRST)
    path, out = tmp_path / "step-000001", tmp_path / "one.pt"
    mp.spawn(_one_rank, args=(str(tiny_model_dir), str(path), str(out)), nprocs=1, join=True)
    published = deserialize(torch.load(out)["payload"])
    resumed = _policy(tiny_model_dir, start=path)
    for name, tensor in single.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=0, atol=1e-6, msg=name)
        if name in published:
            torch.testing.assert_close(published[name], tensor, rtol=0, atol=1e-6, msg=name)


LORA = CFG.model_copy(deep=True)
LORA.learner.lora.rank, LORA.learner.optim.lr = 4, 0.02


def _lora_rank(rank: int, world: int, port: int, model_dir: str, path: str, out: str) -> None:
    import torch.distributed as dist

    from relayrl.learner.policy import Policy

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    policy = Policy(LORA, SPEC, model_dir)
    if rank == 0:
        policy.train(FIRST)
        item = policy.publish(WeightStore(), 1, "float32")
        policy.save(ckpt.Path(path), {"version": 1, "step": 1})
        policy.finish()
        torch.save({"payload": bytes(item.payload)}, out)
    else:
        policy.updater.follow()
    dist.destroy_process_group()


def test_lora_under_fsdp_publishes_adapters_and_resumes_on_one_rank(tiny_model_dir, tmp_path):
    from relayrl.learner.policy import Policy

    single = Policy(LORA, SPEC, str(tiny_model_dir))
    single.train(FIRST)
    expected = deserialize(bytes(single.publish(WeightStore(), 1, "float32").payload))
    path, out = tmp_path / "step-000001", tmp_path / "lora.pt"
    mp.spawn(_lora_rank, args=(2, free_port(), str(tiny_model_dir), str(path), str(out)), nprocs=2, join=True)
    published = deserialize(torch.load(out)["payload"])
    assert set(published) == set(expected) and all(".lora_" in name for name in published)
    for name, tensor in expected.items():
        torch.testing.assert_close(published[name], tensor, rtol=0, atol=1e-5, msg=name)
    resumed = Policy(LORA, SPEC, str(tiny_model_dir), start=path)
    again = deserialize(bytes(resumed.publish(WeightStore(), 1, "float32").payload))
    for name, tensor in published.items():
        assert torch.equal(again[name], tensor), name
    merged = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)  # the merged export
    assert (path / "adapter" / "adapter_config.json").exists() and merged.config.model_type == "qwen2"
