"""The inference-engine boundary and its transformers implementation for small CPU models.

An engine turns prompts into G sampled completions with, for every token, the behaviour
log-probability under the distribution it was sampled from and the policy version that produced
it; it loads new weights in place between generations, and, when asked, in the middle of one: every
`update_every` tokens it calls `between()`, which may load a newer version (the engine is paused
while it runs), and the tokens after it record the new version (partial rollouts). `TransformersEngine` runs its own sampling
loop over a transformers model with a KV cache: left-padded prompts with explicit position ids (so
the learner, which right-pads, recomputes the same logprobs), temperature, top-k and top-p applied
to the logits before sampling (`relayrl.sampling`, which the learner scores with too), and the
logprob taken from that same filtered distribution.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from relayrl.config import SamplingConfig
from relayrl.sampling import filter_logits  # the one definition, shared with the learner


@dataclass
class Completion:
    """One sampled completion."""

    prompt_token_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    versions: list[int]
    text: str
    finish_reason: str
    extra: dict = field(default_factory=dict)
    loss_mask: list[int] = field(default_factory=list)
    """Per token: 1 the model's, 0 an observation's (agent episodes); empty: all the model's."""
    turns: int = 0
    """Model turns of an agent episode (0: a single completion)."""
    infra_error: str = ""
    """Why an agent episode could not run to its end (its sample is never judged)."""


class Engine(ABC):
    """Generates groups of completions and follows weight versions."""

    version: int = 0

    @abstractmethod
    def generate(self, prompts: list[str], sampling: SamplingConfig, seed: int | None = None,
                 between: Callable[[], None] | None = None, update_every: int = 0) -> list[list[Completion]]:
        """`sampling.group_size` completions for each prompt, in prompt order. With `between` and
        `update_every` > 0, `between()` runs every `update_every` tokens (it may call `load_weights`)."""

    @abstractmethod
    def generate_from_ids(self, sequences: list[list[int]], sampling: SamplingConfig, max_new_tokens: list[int],
                          stop: tuple[str, ...] = (), seed: int | None = None,
                          between: Callable[[], None] | None = None, update_every: int = 0) -> list[Completion]:
        """One completion of each token-id sequence (already encoded: nothing is re-tokenised),
        of at most `max_new_tokens[i]` tokens, ending at EOS or once its text holds one of `stop`
        (the token that completes it is kept; `finish_reason` "stop"). `sampling.group_size` is
        ignored: multi-turn episodes continue each sequence once per turn. `between` and
        `update_every` as in `generate`."""

    @abstractmethod
    def encode_continuation(self, text: str) -> list[int]:
        """Token ids of `text` appended to a sequence (no BOS): a tool's observation."""

    @abstractmethod
    def load_weights(self, state_dict: dict, version: int) -> None:
        """Replace the weights (names as in the Hugging Face checkpoint) and serve `version`."""

    @abstractmethod
    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids as the engine feeds them (BOS included)."""

    def max_new_tokens_limit(self) -> int:
        """The most tokens one sequence may hold, prompt included (the model's context length)."""
        return 1 << 16


class TransformersEngine(Engine):
    """A transformers causal LM sampled with a KV cache on the CPU."""

    def __init__(self, model_dir: str, threads: int = 1) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self._base = None  # the starting model's weights (memory-mapped), read when adapters arrive
        self._base_intact = True  # every weight not touched by an adapter is still the starting model's
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        self.bos = self.tokenizer.bos_token or ""
        self.version = 0

    def max_new_tokens_limit(self) -> int:
        return int(self.model.config.max_position_embeddings)

    def encode(self, prompt: str) -> list[int]:
        return self.tokenizer(self.bos + prompt, add_special_tokens=False)["input_ids"]

    def encode_continuation(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def load_weights(self, state_dict: dict, version: int) -> None:
        """A full version replaces every weight; a LoRA adapter (`relayrl.weights.lora`) is merged
        into the starting model's weights of the modules it adapts."""
        import torch

        from relayrl.weights.lora import BaseWeights, is_adapter, merge

        adapter = is_adapter(state_dict)
        if adapter:
            self._base = self._base or BaseWeights(self.model_dir)
            merged = merge(self._base, state_dict, torch.float32)
            if not self._base_intact:  # a full version was loaded since: back to the base first
                merged = {**{k: self._base.get(k) for k in self._base.names()}, **merged}
            state_dict = merged
        with torch.no_grad():  # copy_ casts the wire dtype into the fp32 parameters: no intermediate copy
            missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
        # tied embeddings may arrive under one name only; an adapter touches only its modules
        missing = [k for k in missing if k != "lm_head.weight" and not adapter]
        if missing or unexpected:
            raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
        self._base_intact = adapter  # after an adapter every other weight is the base's; after a full version not
        self.version = version

    def generate(self, prompts, sampling, seed=None, between=None, update_every=0):
        g = sampling.group_size
        rows = [ids for ids in (self.encode(p) for p in prompts) for _ in range(g)]
        result = self._sample(rows, sampling, [sampling.max_new_tokens] * len(rows), (), seed, between, update_every)
        return [result[j * g:(j + 1) * g] for j in range(len(prompts))]

    def generate_from_ids(self, sequences, sampling, max_new_tokens, stop=(), seed=None, between=None,
                          update_every=0):
        return self._sample([list(s) for s in sequences], sampling, list(max_new_tokens), tuple(stop), seed,
                            between, update_every)

    def _stopped(self, ids: list[int], stop: tuple[str, ...]) -> bool:
        """The text of the newest tokens completes one of `stop` (each token is at least a character)."""
        tail = self.tokenizer.decode(ids[-max(map(len, stop)):], skip_special_tokens=False)
        return any(s in tail for s in stop)

    def _sample(self, rows: list[list[int]], sampling, budgets: list[int], stop: tuple[str, ...], seed, between,
                update_every) -> list[Completion]:
        """One completion per row of token ids, at most `budgets[i]` tokens each."""
        import torch
        from transformers import DynamicCache

        width = max(map(len, rows))
        input_ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        n, steps = len(rows), max(budgets)
        out_tokens = torch.full((n, steps), self.pad_id)
        out_logps = torch.zeros(n, steps)
        done = torch.tensor([b <= 0 for b in budgets])
        lengths = torch.tensor([min(b, steps) for b in budgets])
        stopped_at = [False] * n
        versions = torch.zeros(steps, dtype=torch.long)
        cache = DynamicCache()
        step_ids, positions = input_ids, (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            for t in range(steps):
                if bool(done.all()):
                    break
                if between is not None and update_every and t and t % update_every == 0:
                    between()  # may load new weights in place; the KV cache of earlier tokens is kept
                versions[t] = self.version
                logits = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                    cache=cache, use_cache=True).logits[:, -1].float()
                logits = filter_logits(logits / sampling.temperature, sampling.top_k, sampling.top_p)
                logp = torch.log_softmax(logits, dim=-1)
                tok = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(-1)
                tok = torch.where(done, torch.full_like(tok, self.pad_id), tok)
                out_tokens[:, t] = tok
                out_logps[:, t] = logp.gather(-1, tok[:, None]).squeeze(-1)
                newly = ~done & (tok == self.eos_id)
                for i in range(n):
                    if done[i] or newly[i]:
                        continue
                    if stop and self._stopped(out_tokens[i, :t + 1].tolist(), stop):
                        newly[i] = stopped_at[i] = True
                    elif t + 1 >= budgets[i]:
                        newly[i] = True
                lengths[newly] = t + 1
                done |= newly
                step_ids = tok[:, None]
                positions = positions[:, -1:] + 1
                mask = torch.cat([mask, torch.ones(n, 1, dtype=mask.dtype)], dim=1)
        result = []
        for i in range(n):
            k = int(lengths[i])
            ids = out_tokens[i, :k].tolist()
            eos = bool(ids) and ids[-1] == self.eos_id
            body = ids[:-1] if eos else ids
            result.append(Completion(
                prompt_token_ids=rows[i], token_ids=ids, logprobs=out_logps[i, :k].tolist(),
                versions=versions[:k].tolist(), text=self.tokenizer.decode(body, skip_special_tokens=False),
                finish_reason="stop" if eos or stopped_at[i] else "length"))
        return result
