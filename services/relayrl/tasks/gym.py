"""reasoning-gym generators as an endless stream of math rows.

A reasoning-gym dataset is finite: the stream draws chunks of `GYM_CHUNK` questions, each chunk
with its own seed, and turns each into a row with the generator's gold answer (the math verifier
checks it). The first chunk is made when the stream is, so a wrong dataset name or option fails
at once, naming it.
"""

from __future__ import annotations

from collections.abc import Iterator

from relayrl.config.task import ReasoningGymSource
from relayrl.tasks.row import Row

GYM_CHUNK = 1000
"""Questions per chunk drawn from the generator."""


def _chunk(src: ReasoningGymSource, base_seed: int, chunk: int):
    """One chunk of the dataset; a wrong name or option is a ValueError naming it."""
    import reasoning_gym

    try:
        # chunk seeds step by a prime far above any seed offset: streams of different offsets
        # (training, held-out) never draw the same chunk seed
        return reasoning_gym.create_dataset(src.dataset, size=GYM_CHUNK, seed=base_seed + 100_003 * chunk,
                                            **src.options)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"task.source: reasoning-gym cannot make {src.dataset!r} with options "
                         f"{src.options}: {exc}") from exc


def _rows(src: ReasoningGymSource, base_seed: int, first) -> Iterator[Row]:
    data, chunk = first, 0
    while True:
        for entry in data:
            yield Row(kind="math", prompt=entry["question"], answer=str(entry["answer"]))
        chunk += 1
        data = _chunk(src, base_seed, chunk)


def generate(src: ReasoningGymSource, base_seed: int) -> Iterator[Row]:
    """The endless stream of `src`'s questions from `base_seed` (its first chunk made now)."""
    return _rows(src, base_seed, _chunk(src, base_seed, 0))
