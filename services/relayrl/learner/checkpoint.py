"""Durable learner checkpoints: sharded training state, a plain Hugging Face export, and the ledger.

`OUT/checkpoints/step-NNNNNN/` holds

- `state/`: the trained weights and the optimizer, written by every rank as torch.distributed.
  checkpoint (DCP) shards — under LoRA the adapters only. DCP reshards on load, so a checkpoint
  written by N ranks resumes on M (one process included);
- the model (safetensors), its config and the tokenizer, which transformers and vLLM load as they
  are: gathered one tensor at a time onto rank 0 (under LoRA merged, W + scale B A) — an export,
  never read back on resume;
- `adapter/` under LoRA: the adapters in PEFT's format (`PeftModel.from_pretrained`);
- `trainer_state.pt` (LR scheduler, RNG states) and `relayrl.json` (version, step, admission and
  drop counters, and the ledger: the ids of every group whose update the model contains, and of
  every group dropped, with the reason).

It is written into `step-N.tmp`, every file and directory fsynced, then renamed into place and the
parent fsynced: a directory named `step-N` is complete. Only after that does the learner
acknowledge the groups the checkpoint contains, so a crash at any moment loses no group and, the
ledger being restored with the model, trains none twice. A checkpoint from before the sharded
state (the model at the top, the optimizer inside `trainer_state.pt`) still resumes, in one process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

STATE = "relayrl.json"
TRAINER = "trainer_state.pt"
SHARDS = "state"
ADAPTER = "adapter"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(Path(dirpath) / name, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


@contextmanager
def _quiet_in_one_process():
    """DCP warns that it assumes one process when no process group exists: that is meant here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _options(policy):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # under LoRA only the adapters are saved: the frozen base comes from the model directory
    return StateDictOptions(ignore_frozen_params=policy.lora, strict=not policy.lora)


def _gather(entries, keep: bool) -> dict:
    """Every entry's full tensor, on the CPU where `keep` (rank 0); each rank joins every gather."""
    out = {}
    for name, _, _, get in entries:
        tensor = get()
        if keep:
            out[name] = tensor.detach().cpu().contiguous()
    return out


def save(final: Path, policy, state: dict | None) -> Path:
    """Write the checkpoint atomically and durably at `final`. Every rank calls it (rank 0 with the
    learner's `state`): each writes its shard and joins the gathers; rank 0 writes the rest."""
    import torch
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from relayrl.learner.distributed import entries

    lead = policy.rank == 0
    tmp = final.with_name(final.name + ".tmp")
    if lead and tmp.exists():
        shutil.rmtree(tmp)
    if policy.updater.world > 1:
        torch.distributed.barrier()  # nobody writes into a directory rank 0 is still clearing
    model_state, optim_state = get_state_dict(policy.model, policy.optimizer, options=_options(policy))
    with _quiet_in_one_process():
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / SHARDS),
                 no_dist=not torch.distributed.is_initialized())
    if policy.lora:
        from relayrl.learner.lora import merged, peft_entries

        export, adapter = _gather(merged(policy.model), lead), _gather(peft_entries(policy.model), lead)
    else:
        export, adapter = _gather(entries(policy.model), lead), {}
    if not lead:
        return final
    base = policy.model.get_base_model() if policy.lora else policy.model
    base.config.save_pretrained(tmp)
    if getattr(base, "generation_config", None) is not None:
        base.generation_config.save_pretrained(tmp)
    save_file(export, tmp / "model.safetensors", metadata={"format": "pt"})
    policy.tokenizer.save_pretrained(tmp)
    if policy.lora:
        policy.model.peft_config["default"].save_pretrained(tmp / ADAPTER)
        save_file(adapter, tmp / ADAPTER / "adapter_model.safetensors", metadata={"format": "pt"})
    torch.save({"scheduler": policy.scheduler.state_dict() if policy.scheduler is not None else None,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}}, tmp / TRAINER)
    (tmp / STATE).write_text(json.dumps(state))
    _fsync_tree(tmp)
    if final.exists():  # a resumed run re-reaching a step a crashed run had saved: replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def restore(path: Path, policy) -> None:
    """Load the weights, optimizer, scheduler and RNG states saved by `save` into `policy` (every
    rank; the shards are resharded to this world size)."""
    import torch

    blob = torch.load(path / TRAINER, weights_only=False)  # our own file, written by `save`
    if (path / SHARDS).is_dir():
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_state, optim_state = get_state_dict(policy.model, policy.optimizer, options=_options(policy))
        state = {"model": model_state, "optim": optim_state}
        with _quiet_in_one_process():
            dcp.load(state, checkpoint_id=str(path / SHARDS), no_dist=not torch.distributed.is_initialized())
        set_state_dict(policy.model, policy.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"], options=_options(policy))
    else:
        _restore_unsharded(path, policy, blob)
    if policy.scheduler is not None and blob["scheduler"] is not None:
        policy.scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"]["torch"])
    random.setstate(blob["rng"]["python"])


def _restore_unsharded(path: Path, policy, blob: dict) -> None:
    """A checkpoint written before `state/`: the model at the top, the optimizer in the blob."""
    from safetensors.torch import load_file

    if policy.updater.world > 1 or policy.lora:
        raise ValueError(f"{path}: a checkpoint without {SHARDS}/ (written by an older relayrl) resumes only in "
                         "one process without LoRA")
    missing, unexpected = policy.model.load_state_dict(load_file(path / "model.safetensors"), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"{path}: the checkpoint does not fit the model (missing {missing}, unexpected {unexpected})")
    policy.optimizer.load_state_dict(blob["optimizer"])


def latest(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint under `checkpoints` (half-written `.tmp` ones are ignored)."""
    if not checkpoints.is_dir():
        return None
    done = [p for p in checkpoints.iterdir()
            if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp") and (p / STATE).exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def read_state(path: Path) -> dict:
    return json.loads((path / STATE).read_text())


def remove_partial(checkpoints: Path) -> None:
    """Delete half-written `.tmp` directories a crash left behind."""
    if checkpoints.is_dir():
        for p in checkpoints.glob("step-*.tmp"):
            shutil.rmtree(p)
