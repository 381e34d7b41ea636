"""Two gloo processes with FSDP2 make the same update as one process on the same batch.

Real processes (torch.multiprocessing, spawn), a real process group over loopback; rank 0
broadcasts the batch, rank 1 follows, each rank holds half of every parameter (`fully_shard`),
gradients are reduce-scattered, and rank 0's gathered weights after the step are compared with a
single process's, and so are the statistics every rank returns (all-reduced: the whole batch's,
not the rank's own shard). Two cuts of each rank's rows into micro-batches:

- by rows (4), in float32: equal to 1e-5 (summation order alone differs);
- by a token budget that sorts the rows and gives the two ranks different numbers of micro-batches
  (so the padding forwards that keep FSDP's collectives in step run), in float64, where the
  summation order costs ~1e-15: equal to 1e-9, so the reordering and the padding change nothing.
"""

import pytest
import torch
import torch.multiprocessing as mp

from relayrl.config import LearnerConfig, LossConfig
from relayrl.learner.spec import resolve
from relayrl.learner.update import plan, prepare, update

TEMPERATURE, GRAD_CLIP, BUDGET = 1.0, 1.0, 14
CUTS = {"rows": (dict(micro_batch_rows=4), torch.float32, 1e-5), "tokens": (dict(micro_batch_tokens=BUDGET), torch.float64, 1e-9)}
LC = LearnerConfig(loss=LossConfig(algorithm="rloo", objective="decoupled", tis_cap=2.0, kl_beta=0.05), minibatches=2)


def _model(model_dir, dtype=torch.float32):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)


def _rows():
    from tests.integration.test_resume import groups

    return prepare(groups(6, seed=3), resolve(LC.loss, max_new_tokens=16))


def _rank(rank: int, world: int, init_file: str, model_dir: str, out: str, cut: str) -> None:
    import torch.distributed as dist

    from relayrl.learner.distributed import DistributedUpdater, entries, shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    options, dtype, _ = CUTS[cut]
    model = _model(model_dir, dtype)
    ref = _model(model_dir, dtype).eval()
    shard(model, torch.device("cpu"), None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # micro-batches of each rank's 6 rows per minibatch: gradients accumulate to what one process
    # computes on whole minibatches
    updater = DistributedUpdater(model, opt, None, resolve(LC.loss, 16), TEMPERATURE, 0, GRAD_CLIP, LC.minibatches, ref,
                                 **options)
    updater.on("publish", lambda: [get() for _, _, _, get in entries(model)])
    if rank == 0:
        stats = updater.step(_rows())
        updater.collective("publish")
        weights = {name: get() for name, _, _, get in entries(model)}  # gathered, one tensor at a time
        updater.finish()
        torch.save({"weights": weights, "stats": stats,
                    "local": {n: p.to_local().numel() for n, p in model.named_parameters()}}, out)
    else:
        assert updater.follow() == 1
        torch.save({"stats": updater.last_stats}, out + ".rank1")
    dist.destroy_process_group()


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_two_gloo_fsdp_processes_make_the_same_update_as_one(tiny_model_dir, tmp_path, cut):
    options, dtype, tolerance = CUTS[cut]
    rows = _rows()
    assert len(rows.rows) == 24
    if cut == "tokens":  # the ranks cut different numbers of micro-batches: padding forwards run
        counts = [[len(mb.micro) - mb.padding for mb in plan(rows, 0, 2, r, 2, **options)] for r in (0, 1)]
        assert counts[0] != counts[1]
    model, ref = _model(tiny_model_dir, dtype), _model(tiny_model_dir, dtype).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    single_stats = update(model, opt, None, rows, resolve(LC.loss, 16), TEMPERATURE, 0, GRAD_CLIP, LC.minibatches, ref)
    single = model.state_dict()

    out = tmp_path / "rank0.pt"
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tiny_model_dir), str(out), cut), nprocs=2, join=True)
    saved = torch.load(out)
    sharded = saved["weights"]
    rank0, rank1 = saved["stats"], torch.load(str(out) + ".rank1")["stats"]
    # each rank held half of every parameter (dim 0 split in two), not a replica
    assert all(2 * n == before[name].numel() for name, n in saved["local"].items())
    assert rank0.keys() == single_stats.keys() == rank1.keys()
    # the figures that depend on which tokens a shard holds: rank 0's own half would differ from these
    for name in ("entropy", "clip_frac", "ratio_mean", "kl", "mismatch_kl", "mismatch_kl_k1", "ess",
                 "is_weight_max", "is_weight_mean", "tis_clip_frac", "loss", "grad_norm", "tokens"):
        assert abs(rank0[name] - single_stats[name]) <= 1e-4 * max(1.0, abs(single_stats[name])), name
        assert rank1[name] == rank0[name], name
    moved = 0.0
    for name, tensor in sharded.items():
        # float32 sums in another order differ by ~1e-7 in the gradients; Adam's g / sqrt(v) enlarges
        # that for near-zero gradients to a few 1e-6, a thousandth of what the step moves each weight
        # (float64: ~1e-12)
        torch.testing.assert_close(tensor, single[name], rtol=0, atol=tolerance, msg=name)
        moved = max(moved, float((single[name] - before[name]).abs().max()))
    assert set(sharded) == set(dict(model.named_parameters()))  # every weight published (a tied one once)
    assert moved > 1e-3  # the update is real: two AdamW steps moved the weights far beyond the tolerance
