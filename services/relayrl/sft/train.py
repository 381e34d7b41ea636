"""Cold-start SFT: fine-tune a causal LM on {"prompt", "response"} examples, loss on the response.

Each example is tokenised as the engines feed it — BOS + prompt, then the response's tokens and
EOS, tokenised separately so the boundary matches what the model sees when it generates after the
prompt. The loss is the mean cross-entropy over response tokens and the EOS only (prompt and
padding are masked with -100), so the model learns to answer and to stop, not to echo prompts.
AdamW over shuffled mini-batches; the result is saved with `save_pretrained` (model and tokenizer),
a directory transformers, the engines and the learner load.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SftOptions:
    """Hyper-parameters of one SFT run."""

    epochs: int = 3
    """Passes over the data."""
    batch_size: int = 8
    """Examples per optimizer step."""
    lr: float = 1e-4
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_len: int = 0
    """Drop examples longer than this many tokens (0: the model's context length)."""
    seed: int = 0
    """Seed of the shuffling and of torch."""
    threads: int = 1
    """torch CPU threads."""


def read_jsonl(path: str | Path, fields: tuple[str, ...] = ("prompt", "response"), what: str = "examples") -> list[dict]:
    """Rows of a JSONL file; every line must be an object with a string for each of `fields`."""
    need = " and ".join(f"'{f}'" for f in fields)
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not (isinstance(row, dict) and all(isinstance(row.get(f), str) for f in fields)):
            raise ValueError(f"{path}:{number}: each line must be an object with string {need}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no {what}")
    return rows


def encode_example(tokenizer, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """(input ids, labels): BOS + prompt + response + EOS, labels -100 except response and EOS."""
    bos = tokenizer.bos_token or ""
    p = tokenizer(bos + prompt, add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return p + r, [-100] * len(p) + r


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded input ids, attention mask and labels as tensors."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.tensor([x + [pad_id] * (width - len(x)) for x, _ in batch])
    labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
    return ids, mask, labels


def response_loss(model, ids, mask, labels):
    """Mean cross-entropy of the next token over the labelled (response + EOS) positions."""
    import torch.nn.functional as F

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    target = labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)


def sft(model_dir: str | Path, data: list[dict] | str | Path, out: str | Path,
        options: SftOptions = SftOptions()) -> dict:
    """Fine-tune `model_dir` on `data` (rows or a JSONL path), save to `out`; returns the losses
    (`first`/`last` epoch means, per-step `losses`) and the number of examples trained on."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = read_jsonl(data) if isinstance(data, (str, Path)) else data
    if not rows:
        raise ValueError("no SFT examples")
    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    limit = options.max_len or int(model.config.max_position_embeddings)
    examples = [encode_example(tokenizer, r["prompt"], r["response"]) for r in rows]
    kept = [e for e in examples if len(e[0]) <= limit]
    if not kept:
        raise ValueError(f"every example is longer than {limit} tokens")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    rng = random.Random(options.seed)
    model.train()
    losses: list[float] = []
    epoch_means: list[float] = []
    for _ in range(options.epochs):
        order = list(range(len(kept)))
        rng.shuffle(order)
        epoch: list[float] = []
        for start in range(0, len(order), options.batch_size):
            ids, mask, labels = collate([kept[i] for i in order[start:start + options.batch_size]], pad_id)
            loss = response_loss(model, ids, mask, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch.append(float(loss.detach()))
        losses += epoch
        epoch_means.append(sum(epoch) / len(epoch))
    model.eval()
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {"examples": len(kept), "skipped_too_long": len(examples) - len(kept), "steps": len(losses),
            "first_epoch_loss": epoch_means[0], "last_epoch_loss": epoch_means[-1], "losses": losses,
            "out": str(out)}
