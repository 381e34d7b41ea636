"""Procedural tasks: endless, reproducible rows a tiny random model can learn by RL alone on a CPU.

The quickstart needs a task a tiny random model can learn in minutes whose reward still comes
from the real reward service: "which digit occurs most often in these five?" has a one-digit
answer, so an untrained model is right by chance a few percent of the time (low, but not zero)
and GRPO has a signal from the first step. `print_value` is its code counterpart: the prompt is a
target number, the response is the expression that fills `print(…)`, and the code verifier runs
that program in the sandbox and compares what it prints with the target. Prompts are text in the
tiny tokenizer's alphabet (digits and `?+= `).

Real (instruct) models get reasoning-gym generators instead (`gym.py`) or data files.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

from relayrl.tasks.row import Row


def most_frequent_digit(rng: random.Random, num_digits: int) -> Row:
    """`31353?` -> `3`: digits with a unique most frequent one."""
    while True:
        digits = [rng.randrange(10) for _ in range(num_digits)]
        (top, n), *rest = Counter(digits).most_common()
        if not rest or rest[0][1] < n:
            return Row(kind="math", prompt="".join(map(str, digits)) + "?", answer=str(top))


def add_digits(rng: random.Random, num_digits: int) -> Row:
    """`3+5=` -> `8`: single-digit addition."""
    a, b = rng.randrange(10), rng.randrange(10)
    return Row(kind="math", prompt=f"{a}+{b}=", answer=str(a + b))


def print_value(rng: random.Random, num_digits: int) -> Row:
    """`7=` -> a Python expression that `print(…)` turns into `7`, judged in the sandbox: the
    program run is `print(` + the response + `)`, its output compared with the target."""
    target = rng.randrange(10)
    spec = {"kind": "stdio", "cases": [{"stdin": "", "stdout": str(target)}], "prefix": "print(", "suffix": ")",
            "timeout_s": 5}
    return Row(kind="code", prompt=f"{target}=", tests=spec)


GENERATORS = {"most_frequent_digit": most_frequent_digit, "add_digits": add_digits, "print_value": print_value}
MATH_TASKS = ("most_frequent_digit", "add_digits")
"""The generators of math rows (what `relayrl eval -d task:NAME` and `relayrl distill` take)."""

ALPHABET = "0123456789?+= "
"""Every character a procedural prompt or answer may use: the tiny tokenizer's alphabet."""


def generate(name: str, num_digits: int, seed: int) -> Iterator[Row]:
    """The endless stream of generator `name`, reproducible from `seed`."""
    rng = random.Random(seed)
    make = GENERATORS[name]
    while True:
        yield make(rng, num_digits)


def corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Text the tiny tokenizer is trained on: prompts and answers of the math tasks."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        for make in (GENERATORS[name] for name in MATH_TASKS):
            item = make(rng, 5)
            out.append(item.prompt + item.answer)
    return out
