"""Procedural tasks: prompt generators with gold answers for the math verifier.

The quickstart needs a task a tiny random model can learn by RL alone on a CPU in minutes, whose
reward still comes from the real reward service: "which digit occurs most often in these five?"
has a one-digit answer, so an untrained model is right by chance a few percent of the time (low,
but not zero) and GRPO has a signal from the first step. Prompts are text in the tiny tokenizer's
alphabet (digits and `?+= `), answers are integers that math-verify checks.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

from relayrl.config import TaskConfig


@dataclass(frozen=True)
class TaskItem:
    """One prompt of a task."""

    text: str
    """Prompt text."""
    answer: str
    """Gold answer, as the math verifier compares it."""
    kind: str = "math"
    """Verifier kind."""


def most_frequent_digit(rng: random.Random, num_digits: int) -> TaskItem:
    """`31353?` -> `3`: digits with a unique most frequent one."""
    while True:
        digits = [rng.randrange(10) for _ in range(num_digits)]
        (top, n), *rest = Counter(digits).most_common()
        if not rest or rest[0][1] < n:
            return TaskItem(text="".join(map(str, digits)) + "?", answer=str(top))


def add_digits(rng: random.Random, num_digits: int) -> TaskItem:
    """`3+5=` -> `8`: single-digit addition."""
    a, b = rng.randrange(10), rng.randrange(10)
    return TaskItem(text=f"{a}+{b}=", answer=str(a + b))


GENERATORS = {"most_frequent_digit": most_frequent_digit, "add_digits": add_digits}

# Every character a task prompt or answer may use; the tiny tokenizer's alphabet.
ALPHABET = "0123456789?+= "


def stream(cfg: TaskConfig, seed_offset: int = 0) -> Iterator[TaskItem]:
    """An endless, reproducible stream of prompts (`seed_offset` gives a held-out stream)."""
    rng = random.Random(cfg.seed * 1_000_003 + seed_offset)
    make = GENERATORS[cfg.name]
    while True:
        yield make(rng, cfg.num_digits)


def corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Text the tokenizer is trained on: prompts and answers of every task."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        for make in GENERATORS.values():
            item = make(rng, 5)
            out.append(item.text + item.answer)
    return out
