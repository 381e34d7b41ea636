"""The policy the learner trains: model, tokenizer, optimizer, LR schedule, the frozen reference
model, and the updater that turns scored groups into optimizer steps.

The updater is the one seam between a learner in one process and one under torchrun: a
`LocalUpdater`, or with `WORLD_SIZE > 1` a `DistributedUpdater` over DDP (`distributed`) whose
rank 0 is this learner and whose other ranks `follow` it. Either way `train` takes a batch of
groups and returns its statistics. Publishing a version is serializing the model's state dict
into a weight store (`WeightStore.publish`); announcing it is the learner's business.

This part knows nothing of queues, admission or files: the learner (`trainer`) hands it groups,
and `checkpoint` saves and restores its model, tokenizer, optimizer and scheduler.
"""

from __future__ import annotations

import os
from pathlib import Path

from relayrl.config import RunConfig
from relayrl.learner.spec import AlgoSpec
from relayrl.wire import common_pb2


class Policy:
    """The trained model and everything that moves it; torch is imported when one is built."""

    def __init__(self, cfg: RunConfig, spec: AlgoSpec, model_dir: str, weights: Path | None = None) -> None:
        """The model from `weights` (a checkpoint) or `model_dir`; the reference (kl_beta > 0) is
        always `model_dir`'s, the initial policy, also after a resume."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from relayrl.learner.update import LocalUpdater

        lc = cfg.learner
        hf_logging.disable_progress_bar()
        torch.set_num_threads(lc.torch_threads)
        torch.manual_seed(lc.seed)
        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(weights or model_dir, dtype=torch.float32)
        self.model.train()
        self.ref_model = None
        if lc.loss.kl_beta > 0:
            self.ref_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
            self.ref_model.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lc.optim.lr, weight_decay=lc.optim.weight_decay)
        warmup = lc.optim.lr_warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda k: min(1.0, (k + 1) / warmup) if warmup else 1.0)
        updater, model = LocalUpdater, self.model
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: DDP across the ranks
            from relayrl.learner.distributed import DistributedUpdater, init_from_env, wrap

            init_from_env()
            updater, model = DistributedUpdater, wrap(self.model)
        self.updater = updater(model, self.optimizer, self.scheduler, spec, cfg.rollout.sampling.temperature,
                               self.tokenizer.pad_token_id, lc.optim.grad_clip, lc.minibatches, self.ref_model,
                               lc.micro_batch_rows)

    def train(self, groups: list[common_pb2.Group]) -> dict:
        """One batch: advantages under the spec's algorithm, then `minibatches` optimizer steps."""
        from relayrl.learner.update import prepare

        return self.updater.step(prepare(groups, self.spec))

    def publish(self, store, version: int, wire_dtype: str):
        """Serialize the current weights into `store` (a WeightStore) as `version`; the published item."""
        return store.publish(version, self.model.state_dict(), wire_dtype)

    def finish(self) -> None:
        """Training is over: release the other ranks, if any."""
        self.updater.finish()
