"""Cold-start the tiny model for SWE tasks: supervised fine-tuning on one diff that applies to any task.

The tiny random model (`model.tiny`, here with `alphabet: ascii` so that it can read prompts and
write diffs) cannot write a fix, and a response with no diff, or one that does not apply, is
failed by the SWE verifier without running the tests. So that every sample's reward in training
is a real run of its task's tests in the sandbox, this script fine-tunes the model, before RL
(R1's "cold start"), to answer every training prompt of the config with the same small diff,
which adds a file `NOTES` and so applies to any repository: the tests then run and fail (reward
0, unless a task's tests pass at its base state). It is a stand-in policy for measuring and
testing the system with real test runs in the loop (`configs/swe-mini.yaml`, the slow test
`tests/e2e/test_swe_mini.py`, `benchmarks/async_vs_sync.py --real-swe`), not a model that fixes
anything. Prints one JSON line (the SFT losses).

    .venv/bin/python scripts/swe_cold_start.py configs/swe-mini.yaml models/swe-mini
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

NOTES_DIFF = "--- /dev/null\n+++ b/NOTES\n@@ -0,0 +1 @@\n+todo\n"
"""The diff the cold-started model writes: a new file, which `git apply` adds to any repository."""


def prompts(cfg) -> list[str]:
    """The distinct prompts of one pass over the config's training rows (no chat: tiny models have no template)."""
    from relayrl.tasks import Tasks, render

    seen: dict[str, None] = {}
    for row in Tasks(cfg.task).train:
        seen[render(row, cfg.task, tokenizer=None).text] = None
    if not seen:
        raise SystemExit(f"{cfg.task.source.path}: no training rows")
    return list(seen)


def cold_start(config: Path, out: Path, epochs: int = 80, batch_size: int = 4, lr: float = 2e-3, seed: int = 0,
               threads: int = 1) -> dict:
    """Build the tiny model of `config`, fine-tune it to answer its prompts with `NOTES_DIFF`, save it to `out`."""
    from relayrl.config import RunConfig
    from relayrl.model.tiny import init_tiny
    from relayrl.sft.train import SftOptions, sft

    cfg = RunConfig.load(config)
    if cfg.model.tiny.alphabet != "ascii":
        raise SystemExit(f"{config}: model.tiny.alphabet must be ascii (the tiny model must be able to write a diff)")
    if cfg.task.chat:
        raise SystemExit(f"{config}: task.chat must be false (the tiny model has no chat template)")
    data = [{"prompt": text, "response": NOTES_DIFF} for text in prompts(cfg)]
    with tempfile.TemporaryDirectory(prefix="relayrl-cold-start-") as tmp:
        init = init_tiny(Path(tmp) / "init", cfg.model.tiny)
        result = sft(init, data, out, SftOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                                 threads=threads))
    result.pop("losses")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="Run config: its model.tiny shape and its task's SWE rows.")
    parser.add_argument("out", type=Path, help="Directory to save the cold-started model to (the config's model.path).")
    parser.add_argument("--epochs", type=int, default=80, help="Passes over the prompts.")
    parser.add_argument("--batch-size", type=int, default=4, help="Prompts per optimizer step.")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the model and of the shuffling.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    args = parser.parse_args()
    print(json.dumps(cold_start(args.config, args.out, args.epochs, args.batch_size, args.lr, args.seed, args.threads)))


if __name__ == "__main__":
    main()
