"""Sample k completions per problem with the transformers engine and report pass@1 / cons@k.

Generation goes through `relayrl.rollout.engine.TransformersEngine`, the same sampler the actors
use (temperature and nucleus applied to the logits), in batches of prompts, each batch with its
own seed derived from `seed`, so a result reproduces exactly. With `chat`, prompts are wrapped in
the tokenizer's chat template (instruct models); otherwise they are fed as raw text after BOS.
"""

from __future__ import annotations

import json
from pathlib import Path

from relayrl.evaluation.datasets import EvalDataset, load
from relayrl.evaluation.metrics import Sample, aggregate


def chat_prompt(tokenizer, text: str) -> str:
    """`text` as the one user turn of the tokenizer's chat template (`--chat`)."""
    from relayrl.tasks import chat_wrap

    return chat_wrap(tokenizer, [{"role": "user", "content": text}])


def run_dataset(engine, dataset: EvalDataset, k: int, max_new_tokens: int, temperature: float,
                top_p: float, seed: int, batch_prompts: int, render=None, samples_out=None) -> dict:
    """Sample, score and aggregate one dataset; writes one JSON line per sample to `samples_out`.

    `render` turns a problem (an `EvalItem`) into what the model is fed (e.g. a chat); None: its text."""
    from relayrl.config import SamplingConfig
    from relayrl.reward.verifiers.answer import format_reward

    sampling = SamplingConfig(group_size=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    limit = engine.max_new_tokens_limit()
    problems: list[list[Sample]] = []
    infra_before = dataset.scorer.infra_errors  # a dataset is run again at every version the evaluator follows
    truncated = 0
    formatted = 0.0
    for start in range(0, len(dataset.items), batch_prompts):
        batch = dataset.items[start:start + batch_prompts]
        prompts = [render(it) if render is not None else it.prompt for it in batch]
        longest = max(len(engine.encode(p)) for p in prompts)
        if longest + max_new_tokens > limit:
            raise ValueError(f"{dataset.name}: a prompt of {longest} tokens plus max_new_tokens={max_new_tokens} "
                             f"exceeds the model's context of {limit} tokens")
        groups = engine.generate(prompts, sampling, seed=seed * 1_000_003 + start)
        for item, group in zip(batch, groups):
            samples = [dataset.scorer(c.text, item) for c in group]
            truncated += sum(c.finish_reason == "length" for c in group)
            formats = [format_reward(c.text) for c in group]
            formatted += sum(formats)
            problems.append(samples)
            if samples_out is not None:
                for c, s, f in zip(group, samples, formats):
                    samples_out.write(json.dumps({"dataset": dataset.name, "prompt": item.prompt,
                                                  "reference": item.reference, "response": c.text,
                                                  "answer": s.answer, "correct": s.correct, "format": f}) + "\n")
    figures = aggregate(problems)
    figures["truncated"] = truncated / (figures["n"] * k)
    figures["format"] = formatted / (figures["n"] * k)  # R1's <think>…</think><answer>…</answer>
    figures["infra_errors"] = dataset.scorer.infra_errors - infra_before
    return figures


def renderer(name: str, tokenizer, chat: bool, task):
    """How a dataset's problems are fed: the run's task as training renders it, else `--chat`."""
    if name == "task" and task is not None:
        from relayrl.tasks import render

        return lambda item: render(item.entry["row"], task, tokenizer).text
    return (lambda item: chat_prompt(tokenizer, item.prompt)) if chat else None


class Suite:
    """The datasets of `specs` with the verifiers that judge them (`close` releases the verifiers'
    worker processes and sandbox); shared by `evaluate` and the evaluator that follows a run."""

    def __init__(self, specs: list[str], n: int, seed: int, template: str | None = None, task=None,
                 reward=None) -> None:
        """`reward`: the run's `RewardConfig` (its sandbox and verifier settings; default ones
        without a run)."""
        from relayrl.config import RewardConfig
        from relayrl.reward.verifiers.math import MathVerifier

        if not specs:
            raise ValueError("no dataset to evaluate")
        reward = reward or RewardConfig()
        self.verifier = MathVerifier(reward)
        self.code_verifier = None
        try:
            if "humaneval" in specs or "task" in specs:  # a task's held-out rows may be code
                from relayrl.reward.verifiers.code import CodeVerifier

                self.code_verifier = CodeVerifier(reward)
            self.datasets = [load(spec, n, seed, self.verifier, template, self.code_verifier, task) for spec in specs]
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.verifier.close()
        if self.code_verifier is not None:
            self.code_verifier.close()


def evaluate(model_dir: str | Path, specs: list[str], k: int = 4, n: int = 100, max_new_tokens: int = 512,
             temperature: float = 0.6, top_p: float = 0.95, seed: int = 0, batch_prompts: int = 8,
             template: str | None = None, chat: bool = False, threads: int = 1,
             samples_path: str | Path | None = None, task=None) -> dict:
    """Evaluate a model directory on every dataset in `specs`; returns the JSON-ready report.

    `task` (a `TaskConfig`, from a run config) defines the spec `task`: that task's held-out
    rows, put to the model exactly as training puts them (`relayrl.tasks.render`)."""
    from relayrl.rollout.engine import TransformersEngine

    if k < 2:
        raise ValueError(f"k must be at least 2 (the engine samples groups; cons@1 is no vote), got {k}")
    if not specs:
        raise ValueError("no dataset to evaluate")
    engine = TransformersEngine(str(model_dir), threads=threads)
    suite = Suite(specs, n, seed, template, task)
    out = open(samples_path, "w") if samples_path else None
    try:
        results = {d.name: run_dataset(engine, d, k, max_new_tokens, temperature, top_p, seed, batch_prompts,
                                       renderer(d.name, engine.tokenizer, chat, task), out) for d in suite.datasets}
    finally:
        suite.close()
        if out is not None:
            out.close()
    return {"model": str(model_dir), "k": k, "temperature": temperature, "top_p": top_p,
            "max_new_tokens": max_new_tokens, "seed": seed, "datasets": results}
