"""The policy the learner trains: model, tokenizer, optimizer, LR schedule, the KL reference, and
the updater that turns scored groups into optimizer steps.

The model is built by `build` (device, precision, LoRA, activation checkpointing, FSDP2, the
reference). The updater is the one seam between a learner in one process and one under torchrun:
a `LocalUpdater`, or with `WORLD_SIZE > 1` a `DistributedUpdater` (`distributed`) whose rank 0 is
this learner and whose other ranks `follow` it. Either way `train` takes a batch of groups and
returns its statistics, scored under the engine's sampling distribution (temperature, top-k,
top-p). Publishing a version serializes the weights — the whole model, or under LoRA only the
adapters — into a weight store, one gathered tensor at a time; saving and restoring a checkpoint
is `checkpoint`'s. Both are collectives under FSDP: every rank joins (`Updater.collective`).

This part knows nothing of queues, admission or files beyond its checkpoint directory: the
learner (`trainer`) hands it groups and paths.
"""

from __future__ import annotations

import os
from pathlib import Path

from relayrl.config import RunConfig
from relayrl.learner.spec import AlgoSpec
from relayrl.wire import common_pb2


class Policy:
    """The trained model and everything that moves it; torch is imported when one is built."""

    def __init__(self, cfg: RunConfig, spec: AlgoSpec, model_dir: str, start: Path | None = None) -> None:
        """The model from `model_dir`, restored from the checkpoint `start` when given (every rank
        builds it: under torchrun this is collective); the reference is always `model_dir`'s,
        the initial policy, also after a resume."""
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from relayrl.learner import build
        from relayrl.learner.update import LocalUpdater

        lc = cfg.learner
        hf_logging.disable_progress_bar()
        torch.set_num_threads(lc.torch_threads)
        torch.manual_seed(lc.seed)
        self.spec, self.model_dir = spec, model_dir
        self.device = build.resolve_device(lc.device)
        updater = LocalUpdater
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 or lc.fsdp.enabled:  # under torchrun, or asked for: FSDP2
            from relayrl.learner.distributed import DistributedUpdater, init_from_env

            init_from_env(self.device)
            updater = DistributedUpdater
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        sharded = updater is not LocalUpdater
        built = build.policy_model(lc, model_dir, self.device, sharded)
        self.model, self.lora = built.model, built.lora
        self.ref = build.reference(lc, model_dir, built, sharded)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        # fused: one kernel over all tensors (8x faster than the per-tensor loop on this CPU; CUDA too)
        self.optimizer = torch.optim.AdamW(trainable, lr=lc.optim.lr, weight_decay=lc.optim.weight_decay, fused=True)
        warmup = lc.optim.lr_warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda k: min(1.0, (k + 1) / warmup) if warmup else 1.0)
        sampling = cfg.rollout.sampling
        self.updater = updater(self.model, self.optimizer, self.scheduler, spec, sampling.temperature,
                               self.tokenizer.pad_token_id, lc.optim.grad_clip, lc.minibatches, self.ref,
                               lc.micro_batch_rows, micro_batch_tokens=lc.micro_batch_tokens, top_k=sampling.top_k,
                               top_p=sampling.top_p, autocast_dtype=built.autocast_dtype)
        self.updater.on("publish", self._gather_published)
        self.updater.on("save", lambda path: self._save(Path(path), None))
        if start is not None:
            from relayrl.learner import checkpoint

            checkpoint.restore(start, self)

    @property
    def rank(self) -> int:
        return self.updater.rank

    def train(self, groups: list[common_pb2.Group]) -> dict:
        """One batch: advantages under the spec's algorithm, then `minibatches` optimizer steps; the
        statistics gain `update_s` (the step alone) and the learner's peak memory so far
        (`peak_cuda_memory_gb`: CUDA memory allocated, on a GPU; `peak_rss_gb`: the process's peak
        RSS, on a CPU)."""
        import resource
        import time

        import torch

        from relayrl.learner.update import prepare

        t0 = time.perf_counter()
        stats = self.updater.step(prepare(groups, self.spec))
        stats["update_s"] = time.perf_counter() - t0
        if self.device.type == "cuda":
            stats["peak_cuda_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 30
        else:
            stats["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux
        return stats

    def published_entries(self) -> list:
        """What a version holds: under LoRA the adapters (`lora.published`), else every weight."""
        if self.lora:
            from relayrl.learner.lora import published

            return published(self.model)
        from relayrl.learner.distributed import entries

        return entries(self.model)

    def _gather_published(self) -> None:
        """Ranks > 0: join the gathers of a publish (the tensors land on rank 0)."""
        for _, _, _, get in self.published_entries():
            get()

    def publish(self, store, version: int, wire_dtype: str):
        """Serialize the current weights into `store` (a WeightStore) as `version`; the published item."""
        self.updater.collective("publish")
        return store.publish_entries(version, self.published_entries(), wire_dtype)

    def _save(self, final: Path, state: dict | None) -> Path:
        from relayrl.learner import checkpoint

        return checkpoint.save(final, self, state)

    def save(self, final: Path, state: dict) -> Path:
        """A durable checkpoint at `final` (rank 0; every rank writes its shard)."""
        self.updater.collective("save", str(final))
        return self._save(final, state)

    def finish(self) -> None:
        """Training is over: release the other ranks, if any."""
        self.updater.finish()
