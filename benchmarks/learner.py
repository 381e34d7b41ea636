"""Learner throughput: tokens/s of relayrl's policy update against a bare torch loop, same run.

Both train the same model (SmolLM2-135M-Instruct with `--model`, else a small random Qwen2 built
here) on the same batch of prompt + completion rows:

- **learner**: `Policy.train` on scored groups — advantages, the batch built from token ids,
  logprobs at the sampling temperature (float32 logits), entropy, the clipped GRPO loss, the
  step's statistics, gradient clipping and AdamW: everything a learner step does.
- **bare**: the loop one would write by hand — one forward over the same padded tensors, the
  log-probabilities of the completion tokens, a REINFORCE-style loss (advantage x logprob, mean
  over completion tokens), backward, gradient clipping, AdamW (fused, as the learner's: the
  per-tensor AdamW is 8x slower on this CPU, which would hide everything else).

Rounds alternate between the two, which goes first alternating too (the machine is shared: the
spread between rounds is larger than either's own cost); the figures are the ratio of the median
times, of the best rounds, the median of each round's ratio (the pair ran back to back), and the
ratio of the median CPU times (the process's, all threads: the work done, which other processes
on the machine disturb less than the wall time), tokens counted as prompt + completion tokens.

    .venv/bin/python benchmarks/learner.py [--model DIR] [--rows 16] [--prompt 48] [--completion 48] [--rounds 7]

Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path


def groups(rows: int, prompt: int, completion: int, vocab: int, group_size: int = 8, seed: int = 0) -> list:
    """Scored groups of random token rows (completion lengths between half and all of `completion`)."""
    from relayrl.wire import common_pb2

    rng = random.Random(seed)
    out = []
    for g in range(rows // group_size):
        ids = [rng.randrange(3, vocab) for _ in range(prompt)]
        samples, scores = [], []
        for i in range(group_size):
            n = rng.randrange(completion // 2, completion + 1)
            samples.append(common_pb2.Sample(sample_id=f"g{g}/{i}", prompt_token_ids=ids,
                                             completion_token_ids=[rng.randrange(3, vocab) for _ in range(n)],
                                             logprobs=[-2.0] * n, versions=[0] * n))
            scores.append(common_pb2.Score(outcome=common_pb2.OUTCOME_PASS, reward=float(rng.random() < 0.5)))
        out.append(common_pb2.Group(group_id=f"g{g}", samples=samples, scores=scores))
    return out


def bare_step(model, optimizer, batch, advantages) -> None:
    """Forward, completion-token logprobs, REINFORCE loss, backward, clip, AdamW: by hand."""
    import torch

    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(-1, batch.targets[..., None]).squeeze(-1)
    loss = -(logp * advantages[:, None] * batch.loss_mask).sum() / batch.loss_mask.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a Hugging Face model directory (default: built)")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--prompt", type=int, default=48)
    parser.add_argument("--completion", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from relayrl.config import LearnerConfig, OptimConfig, RunConfig, TinyModelConfig
    from relayrl.learner.policy import Policy
    from relayrl.learner.spec import resolve
    from relayrl.learner.tokens import build_batch
    from relayrl.learner.update import prepare

    model_dir = args.model
    if model_dir is None:
        from relayrl.model.tiny import init_tiny

        model_dir = init_tiny(Path(tempfile.mkdtemp()) / "model", TinyModelConfig(
            hidden_size=512, num_layers=8, num_heads=8, intermediate_size=2048, max_position_embeddings=256))
    cfg = RunConfig(learner=LearnerConfig(torch_threads=args.threads, optim=OptimConfig(lr=1e-6)),
                    rollout={"sampling": {"max_new_tokens": args.completion, "group_size": 8}})
    spec = resolve(cfg.learner.loss, args.completion)
    policy = Policy(cfg, spec, str(model_dir))
    vocab = min(policy.model.config.vocab_size, len(policy.tokenizer))
    batch_groups = groups(args.rows, args.prompt, args.completion, vocab)
    rows = prepare(batch_groups, spec)
    batch = build_batch(rows.rows, policy.tokenizer.pad_token_id)
    advantages = torch.tensor(rows.advantages, dtype=torch.float32)
    tokens = int(batch.attention_mask.sum())
    bare = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    bare_opt = torch.optim.AdamW(bare.parameters(), lr=1e-6, fused=True)  # the learner's AdamW, as it builds it
    bare_step(bare, bare_opt, batch, advantages)  # warm-up, both
    policy.train(batch_groups)
    learner_s, bare_s, learner_cpu, bare_cpu = [], [], [], []

    def timed(fn, wall: list, cpu: list) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)

    for k in range(args.rounds):  # which goes first alternates, so neither always finds warm caches
        runs = [(lambda: policy.train(batch_groups), learner_s, learner_cpu),
                (lambda: bare_step(bare, bare_opt, batch, advantages), bare_s, bare_cpu)]
        for fn, wall, cpu in (runs if k % 2 == 0 else runs[::-1]):
            timed(fn, wall, cpu)
    params = sum(p.numel() for p in bare.parameters())
    print(json.dumps({
        "benchmark": "learner", "model": str(args.model or "random Qwen2 (built)"), "params_m": round(params / 1e6, 1),
        "rows": args.rows, "tokens_per_step": tokens, "threads": args.threads, "rounds": args.rounds,
        "learner_tokens_per_s": round(tokens / statistics.median(learner_s), 1),
        "bare_tokens_per_s": round(tokens / statistics.median(bare_s), 1),
        "ratio": round(statistics.median(bare_s) / statistics.median(learner_s), 3),
        "ratio_best": round(min(bare_s) / min(learner_s), 3),
        "ratio_paired_median": round(statistics.median(b / lr for b, lr in zip(bare_s, learner_s)), 3),
        "cpu_ratio": round(statistics.median(bare_cpu) / statistics.median(learner_cpu), 3)}))


if __name__ == "__main__":
    main()
