"""The KL reference policy (the initial model), scored without a second full-precision copy on the
training device.

Three ways to hold it, chosen by `build.reference`:

- **shared** (LoRA): the reference *is* the policy with its adapters disabled — no second copy.
- **its own frozen model** on the training device, in bfloat16 on a GPU (its logprobs enter only
  the KL term) and float32 on a CPU; under FSDP it is sharded like the policy.
- **offloaded** (`learner.ref_offload`): its own model in CPU memory, scored there; each
  micro-batch's tokens go to the CPU and its logprobs come back.

Every reference forward runs in eval mode (no dropout) and without gradients.
"""

from __future__ import annotations

import contextlib

import torch

from relayrl.learner.tokens import TokenBatch, eval_mode, token_logprobs


class Reference:
    """Logprobs of the reference policy for a token batch."""

    def __init__(self, model, shared: bool = False, autocast_dtype: torch.dtype | None = None) -> None:
        """`model`: a frozen module of its own, or (`shared`) the policy's PEFT model, whose
        adapters are disabled while it scores."""
        self.model, self.shared, self.autocast_dtype = model, shared, autocast_dtype

    @classmethod
    def of(cls, ref) -> Reference | None:
        """`ref` as a Reference: itself, None, or a plain module scored as one."""
        return ref if ref is None or isinstance(ref, Reference) else cls(ref)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def logprobs(self, batch: TokenBatch, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
        """The reference's logprob of each target of `batch` (on the batch's device)."""
        adapters_off = self.model.disable_adapter() if self.shared else contextlib.nullcontext()
        with torch.no_grad(), eval_mode(self.model), adapters_off:
            logp, _ = token_logprobs(self.model, batch.to(self.device), temperature, top_k, top_p,
                                     autocast_dtype=self.autocast_dtype)
        return logp.to(batch.input_ids.device)
