"""Two gloo processes with DDP make the same update as one process on the same batch.

Real processes (torch.multiprocessing, spawn), a real process group over loopback; rank 0
broadcasts the batch, rank 1 follows, gradients are all-reduced, and rank 0's weights after the
step are compared with a single process's (float32: equal up to summation order), and so are the
statistics every rank returns (all-reduced: the whole batch's, not the rank's own shard)."""

import torch
import torch.multiprocessing as mp

from relayrl.config import LearnerConfig, LossConfig
from relayrl.learner.spec import resolve
from relayrl.learner.update import prepare, update

TEMPERATURE, GRAD_CLIP = 1.0, 1.0
LC = LearnerConfig(loss=LossConfig(algorithm="rloo", objective="decoupled", tis_cap=2.0, kl_beta=0.05), minibatches=2)


def _model(model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def _rows():
    from tests.integration.test_resume import groups

    return prepare(groups(6, seed=3), resolve(LC.loss, max_new_tokens=16))


def _rank(rank: int, world: int, init_file: str, model_dir: str, out: str) -> None:
    import torch.distributed as dist

    from relayrl.learner.distributed import DistributedUpdater, broadcast_rows, wrap

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = _model(model_dir)
    ref = _model(model_dir).eval()
    ddp = wrap(model)
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    # micro-batches of 4 of each rank's 6 rows per minibatch: gradients accumulate (without a DDP
    # sync until the last one) to what one process computes on whole minibatches
    updater = DistributedUpdater(ddp, opt, None, resolve(LC.loss, 16), TEMPERATURE, 0, GRAD_CLIP, LC.minibatches, ref,
                                 micro_batch_rows=4)
    if rank == 0:
        stats = updater.step(_rows())
        updater.finish()
        torch.save({"weights": model.state_dict(), "stats": stats}, out)
    else:
        rows = broadcast_rows(None)
        stats = updater._update(rows)
        assert broadcast_rows(None) is None
        torch.save({"stats": stats}, out + ".rank1")
    dist.destroy_process_group()


def test_two_gloo_processes_make_the_same_update_as_one(tiny_model_dir, tmp_path):
    rows = _rows()
    assert len(rows.rows) == 24
    model, ref = _model(tiny_model_dir), _model(tiny_model_dir).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    single_stats = update(model, opt, None, rows, resolve(LC.loss, 16), TEMPERATURE, 0, GRAD_CLIP, LC.minibatches, ref)
    single = model.state_dict()

    out = tmp_path / "rank0.pt"
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tiny_model_dir), str(out)), nprocs=2, join=True)
    saved = torch.load(out)
    ddp = saved["weights"]
    rank0, rank1 = saved["stats"], torch.load(str(out) + ".rank1")["stats"]
    assert rank0.keys() == single_stats.keys() == rank1.keys()
    # the figures that depend on which tokens a shard holds: rank 0's own half would differ from these
    for name in ("entropy", "clip_frac", "ratio_mean", "kl", "mismatch_kl", "mismatch_kl_k1", "ess",
                 "is_weight_max", "is_weight_mean", "tis_clip_frac", "loss", "grad_norm", "tokens"):
        assert abs(rank0[name] - single_stats[name]) <= 1e-4 * max(1.0, abs(single_stats[name])), name
        assert rank1[name] == rank0[name], name
    moved = 0.0
    for name, tensor in single.items():
        # float32 sums in another order differ by ~1e-7 in the gradients; Adam's g / sqrt(v) enlarges
        # that for near-zero gradients to a few 1e-6, a thousandth of what the step moves each weight
        torch.testing.assert_close(ddp[name], tensor, rtol=0, atol=1e-5, msg=name)
        moved = max(moved, float((tensor - before[name]).abs().max()))
    assert moved > 1e-3  # the update is real: two AdamW steps moved the weights far beyond the tolerance
