"""A task config's rows, loaded and checked once, as the training stream and the held-out split.

Procedural and reasoning-gym sources are endless generators; the held-out stream is the same
generator from another seed (`HELD_OUT` added), so it never repeats the training prompts'
draws. A file source is read and every row checked when it is built (the learner builds it when
a run starts), so a bad row stops the run at once with its file, row and field, instead of
reaching an actor. Its held-out rows are a file of their own, or `held_out_fraction` of the
training file drawn by the seed (and left out of training). Training rows are shuffled anew each
epoch by the seed, so a run that resumes replays the same order; after `epochs` passes the
stream ends.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from itertools import count
from pathlib import Path

from relayrl.config.reward import CodeConfig
from relayrl.config.task import FileSource, ProceduralSource, TaskConfig
from relayrl.tasks import files, gym, procedural
from relayrl.tasks.layouts import RowMaker, detect
from relayrl.tasks.render import render
from relayrl.tasks.row import DataError, Row

HELD_OUT = 7_919
"""Seed offset of the held-out stream of a generated task."""


def read_rows(src: FileSource, path: Path, cfg: TaskConfig, code: CodeConfig | None = None) -> list[Row]:
    """Every row of data file `path`, checked; DataError names the file, row and field at fault."""
    out: list[Row] = []
    maker = None
    for number, record in files.records(path, src.format):
        if maker is None:
            maker = RowMaker(src, path, detect(record) if src.layout == "auto" else src.layout, cfg.swe, code)
        out.append(maker.make(number, record))
    if not out:
        raise DataError(f"{path}: no rows")
    return out


def split_off(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """(training, held-out): `fraction` of the rows, at least one, drawn by `seed`; file order kept in both."""
    if fraction == 0:
        return rows, []
    n = max(1, math.ceil(fraction * len(rows)))
    if n >= len(rows):
        raise DataError(f"{rows[0].where.rsplit(': row', 1)[0]}: held_out_fraction {fraction} leaves no training rows")
    held = set(random.Random(seed).sample(range(len(rows)), n))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


class Tasks:
    """The rows of one task config: `stream()` for training, `held_out()` for evaluation."""

    def __init__(self, cfg: TaskConfig, code: CodeConfig | None = None) -> None:
        """Load (and check) a file source's rows now; `code`: the run's limits on code tests."""
        self.cfg, self.src = cfg, cfg.source
        self.train: list[Row] = []
        self.held: list[Row] = []
        if isinstance(self.src, FileSource):
            self.train = read_rows(self.src, self.src.path, cfg, code)
            if self.src.held_out is not None:
                self.held = read_rows(self.src, self.src.held_out, cfg, code)
            else:
                self.train, self.held = split_off(self.train, self.src.held_out_fraction, cfg.seed)

    def _generated(self, offset: int) -> Iterator[Row]:
        base_seed = self.cfg.seed * 1_000_003 + offset
        if isinstance(self.src, ProceduralSource):
            return procedural.generate(self.src.name, self.src.num_digits, base_seed)
        return gym.generate(self.src, base_seed)

    def stream(self) -> Iterator[Row]:
        """The training rows: endless for a generator; a file's rows, epoch after epoch."""
        if not isinstance(self.src, FileSource):
            return self._generated(0)
        return self._epochs()

    def _epochs(self) -> Iterator[Row]:
        for epoch in count() if self.src.epochs is None else range(self.src.epochs):
            rows = list(self.train)
            if self.src.shuffle:
                random.Random(self.cfg.seed * 1_000_003 + epoch).shuffle(rows)
            yield from rows

    def held_out(self) -> Iterator[Row]:
        """Rows kept out of training: a generator's held-out stream, or a file source's held-out rows
        (in file order; empty when the source keeps none)."""
        if not isinstance(self.src, FileSource):
            return self._generated(HELD_OUT)
        return iter(self.held)

    def check(self, tokenizer) -> None:
        """Render every SWE row and the first row of each other kind and prompt form (a generated
        task: its first row), so a row that cannot be put to this model (chat messages and no
        chat template, a file a SWE row lists and its repository lacks) fails now."""
        rows = [*self.train, *self.held] if isinstance(self.src, FileSource) else [next(self.stream())]
        seen: set[tuple[str, bool]] = set()
        for row in rows:
            form = (row.kind, isinstance(row.prompt, list))
            if row.kind == "swe" or form not in seen:
                seen.add(form)
                render(row, self.cfg, tokenizer)


def stream(cfg: TaskConfig, split: str = "train") -> Iterator[Row]:
    """The rows of `cfg`: its training stream, or with split "held_out" its held-out rows."""
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be train or held_out, got {split!r}")
    tasks = Tasks(cfg)
    return tasks.stream() if split == "train" else tasks.held_out()
