"""Procedural tasks: prompt generators with gold answers for the math verifier.

The quickstart needs a task a tiny random model can learn by RL alone on a CPU in minutes, whose
reward still comes from the real reward service: "which digit occurs most often in these five?"
has a one-digit answer, so an untrained model is right by chance a few percent of the time (low,
but not zero) and GRPO has a signal from the first step. Prompts are text in the tiny tokenizer's
alphabet (digits and `?+= `), answers are integers that math-verify checks.

Real (instruct) models get `reasoning_gym` tasks instead: a reasoning-gym generator's questions
and gold answers, put to the model through its chat template (`render`) with an optional system
message and worked examples, so the same words reach the actors in training and `relayrl eval`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

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


GYM_CHUNK = 1000
"""reasoning-gym datasets are finite: the stream draws chunks of this many, each with its own seed."""


def _gym_chunk(cfg: TaskConfig, base_seed: int, chunk: int):
    """One chunk of the reasoning-gym dataset; a wrong name or option is a ValueError naming it."""
    import reasoning_gym

    try:
        # chunk seeds step by a prime far above any seed offset: streams of different offsets
        # (training, held-out) never draw the same chunk seed
        return reasoning_gym.create_dataset(cfg.dataset, size=GYM_CHUNK, seed=base_seed + 100_003 * chunk,
                                            **cfg.dataset_options)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"task: reasoning-gym cannot make {cfg.dataset!r} with dataset_options "
                         f"{cfg.dataset_options}: {exc}") from exc


def _gym_stream(cfg: TaskConfig, base_seed: int, first) -> Iterator[TaskItem]:
    data, chunk = first, 0
    while True:
        for entry in data:
            yield TaskItem(text=entry["question"], answer=str(entry["answer"]))
        chunk += 1
        data = _gym_chunk(cfg, base_seed, chunk)


def _procedural(cfg: TaskConfig, base_seed: int) -> Iterator[TaskItem]:
    rng = random.Random(base_seed)
    make = GENERATORS[cfg.name]
    while True:
        yield make(rng, cfg.num_digits)


def stream(cfg: TaskConfig, seed_offset: int = 0) -> Iterator[TaskItem]:
    """An endless, reproducible stream of prompts (`seed_offset` gives a held-out stream). A
    reasoning-gym task makes its first chunk here, so a bad dataset or option fails at once."""
    base_seed = cfg.seed * 1_000_003 + seed_offset
    if cfg.name == "reasoning_gym":
        return _gym_stream(cfg, base_seed, _gym_chunk(cfg, base_seed, 0))
    return _procedural(cfg, base_seed)


def chat_wrap(tokenizer, messages: list[dict]) -> str:
    """`messages` in the tokenizer's chat template, ready for the assistant's reply (a leading BOS
    is dropped: the engines add their own)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat template (task.chat / --chat need one)")
    wrapped = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token or ""
    return wrapped[len(bos):] if bos and wrapped.startswith(bos) else wrapped


def render(text: str, cfg: TaskConfig, tokenizer) -> str:
    """The prompt the model sees for task text `text`: the text itself, or with `cfg.chat` a chat
    of the system message, the worked examples and `text` as the last user turn."""
    if not cfg.chat:
        return text
    messages = [{"role": "system", "content": cfg.system}] if cfg.system is not None else []
    for ex in cfg.examples:
        messages += [{"role": "user", "content": ex.question}, {"role": "assistant", "content": ex.response}]
    messages.append({"role": "user", "content": text})
    return chat_wrap(tokenizer, messages)


def corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Text the tokenizer is trained on: prompts and answers of every task."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        for make in GENERATORS.values():
            item = make(rng, 5)
            out.append(item.text + item.answer)
    return out
