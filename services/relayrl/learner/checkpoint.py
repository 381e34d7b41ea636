"""Durable learner checkpoints: a Hugging Face directory plus everything a resume needs.

`OUT/checkpoints/step-NNNNNN/` holds the model (safetensors) and tokenizer that transformers and
vLLM load as they are, `trainer_state.pt` (optimizer, LR scheduler, RNG states) and
`relayrl.json` (version, step, admission counters, drop counters, and the ledger: the ids of
every group whose update the model contains, and of every group dropped, with the reason). It is
written into `step-N.tmp`, every file and the directory fsynced, then renamed into place and the
parent fsynced: a directory named `step-N` is complete. Only after that does the learner
acknowledge the groups the checkpoint contains, so a crash at any moment loses no group and, the
ledger being restored with the model, trains none twice.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

STATE = "relayrl.json"
TRAINER = "trainer_state.pt"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(final: Path, model, tokenizer, optimizer, scheduler, state: dict) -> Path:
    """Write the checkpoint atomically and durably at `final`."""
    import torch

    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    torch.save({"optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}}, tmp / TRAINER)
    (tmp / STATE).write_text(json.dumps(state))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():  # a resumed run re-reaching a step a crashed run had saved: replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def latest(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint under `checkpoints` (half-written `.tmp` ones are ignored)."""
    if not checkpoints.is_dir():
        return None
    done = [p for p in checkpoints.iterdir()
            if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp") and (p / STATE).exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def read_state(path: Path) -> dict:
    return json.loads((path / STATE).read_text())


def restore_trainer(path: Path, optimizer, scheduler) -> None:
    """Load optimizer, scheduler and RNG states saved by `save`."""
    import torch

    blob = torch.load(path / TRAINER, weights_only=False)  # our own file, written by `save`
    optimizer.load_state_dict(blob["optimizer"])
    if scheduler is not None and blob["scheduler"] is not None:
        scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"]["torch"])
    random.setstate(blob["rng"]["python"])


def remove_partial(checkpoints: Path) -> None:
    """Delete half-written `.tmp` directories a crash left behind."""
    if checkpoints.is_dir():
        for p in checkpoints.glob("step-*.tmp"):
            shutil.rmtree(p)
