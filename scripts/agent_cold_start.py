"""Cold-start the tiny model for agent episodes: supervised fine-tuning on one two-turn episode.

The tiny random model (`model.tiny` with `alphabet: ascii`) cannot call a tool: every turn it
writes is a malformed call, so its episodes never edit the repository and never submit, and no
episode's diff reaches the sandbox that grades it. This script fine-tunes it, before RL, on the
episode every training prompt of the config should get: a `bash` call that appends to a file
`NOTES`, the observation the workspace answers (`exit code 0`), then `submit`, laid out token for
token as the actor's episode loop lays them out (prompt ids, turn, observation, turn; each turn
ending with EOS) with the loss on the model's turns only (the episode's loss mask). The diff it
leaves adds `NOTES`, which applies to any task, so the task's tests run in the grading sandbox (and
fail: reward 0 unless a task's tests pass at its base state). A stand-in policy for testing and
measuring the system with real sandboxes in the loop (`configs/swe-agent.yaml`,
`tests/e2e/test_agent_swe.py`, `benchmarks/agent.py`), not a model that fixes anything. Prints one
JSON line (the losses).

    .venv/bin/python scripts/agent_cold_start.py configs/swe-agent.yaml models/swe-agent
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

COMMAND = "echo todo >> NOTES"
CALLS = ('<tool_call>\n{"name": "bash", "arguments": {"command": "' + COMMAND + '"}}\n</tool_call>',
         '<tool_call>\n{"name": "submit"}\n</tool_call>')
OBSERVATION = "exit code 0\n"
"""What the workspace answers to COMMAND (rollout.tools: the exit code, then the empty output)."""


def episode(engine, fmt, prompt: str) -> tuple[list[int], list[int]]:
    """(token ids, labels) of the scripted episode of `prompt`: labels -100 except the model's turns."""
    ids = engine.encode(prompt)
    labels = [-100] * len(ids)
    for k, call in enumerate(CALLS):
        turn = engine.encode_continuation(call) + [engine.eos_id]
        ids, labels = ids + turn, labels + turn
        if k + 1 < len(CALLS):
            obs = engine.encode_continuation(fmt.wrap(OBSERVATION, after_eos=True))
            ids, labels = ids + obs, labels + [-100] * len(obs)
    return ids, labels


def cold_start(config: Path, out: Path, epochs: int = 60, batch_size: int = 4, lr: float = 2e-3, seed: int = 0,
               threads: int = 1) -> dict:
    """Build the tiny model of `config`, fine-tune it on the scripted episode of each of its prompts, save it."""
    import torch

    from relayrl.config import RunConfig
    from relayrl.model.tiny import init_tiny
    from relayrl.rollout.engine import TransformersEngine
    from relayrl.rollout.tools import ObservationFormat
    from relayrl.sft.train import collate, response_loss
    from relayrl.tasks import Tasks, render

    cfg = RunConfig.load(config)
    if cfg.model.tiny.alphabet != "ascii" or cfg.task.chat or cfg.task.agent is None:
        raise SystemExit(f"{config}: needs model.tiny.alphabet ascii, task.chat false and task.agent set")
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="relayrl-agent-cold-start-") as tmp:
        engine = TransformersEngine(str(init_tiny(Path(tmp) / "init", cfg.model.tiny)), threads=threads)
    fmt = ObservationFormat(engine.tokenizer, chat=False)
    prompts = list(dict.fromkeys(render(row, cfg.task, tokenizer=None).text for row in Tasks(cfg.task).train))
    data = [episode(engine, fmt, p) for p in prompts]
    model, rng = engine.model.train(), random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    means = []
    for _ in range(epochs):
        order = rng.sample(range(len(data)), len(data))
        losses = []
        for start in range(0, len(order), batch_size):
            ids, mask, labels = collate([data[i] for i in order[start:start + batch_size]], engine.pad_id)
            loss = response_loss(model, ids, mask, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        means.append(sum(losses) / len(losses))
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    engine.tokenizer.save_pretrained(str(out))
    return {"episodes": len(data), "tokens_max": max(len(ids) for ids, _ in data), "first_epoch_loss": means[0],
            "last_epoch_loss": means[-1], "out": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="Run config: its model.tiny shape, its SWE rows and task.agent.")
    parser.add_argument("out", type=Path, help="Directory to save the cold-started model to (the config's model.path).")
    parser.add_argument("--epochs", type=int, default=60, help="Passes over the prompts.")
    parser.add_argument("--batch-size", type=int, default=4, help="Episodes per optimizer step.")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the model and of the shuffling.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    args = parser.parse_args()
    print(json.dumps(cold_start(args.config, args.out, args.epochs, args.batch_size, args.lr, args.seed, args.threads)))


if __name__ == "__main__":
    main()
