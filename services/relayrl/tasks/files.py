"""Records of a data file: JSONL and JSON read line by line, everything else through `datasets`.

JSONL (and a JSON array) is read with the standard library, not with `datasets`: rows of
different kinds have different shapes (a code row's `tests` is an object, a list or a string),
which Arrow's schema inference refuses ("column changed from array to object") without naming
the line, and a malformed line must be an error that names it. Parquet, CSV, Arrow files and
directories written by `Dataset.save_to_disk` are read by `datasets`, offline and in memory (its
cache goes to a temporary directory, so nothing is written beside the user's data or in their
home). Every record comes with its row number: the line of a JSONL file, else its position (from 1).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from relayrl.tasks.row import DataError

EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet",
              ".csv": "csv", ".arrow": "arrow"}
"""File extension -> format (`task.source.format: auto`)."""


def detect_format(path: Path) -> str:
    """The format of `path` by its extension (a directory: `disk`); DataError when unknown."""
    if path.is_dir():
        return "disk"
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown data file extension {path.suffix!r}: set task.source.format "
                        f"(known: {', '.join(sorted(EXTENSIONS))}, or a directory from save_to_disk)")
    return fmt


def records(path: Path, fmt: str = "auto") -> Iterator[tuple[int, object]]:
    """(row number, record) of every row of `path`; DataError names the file (and row) at fault."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "jsonl":
        yield from _jsonl(path)
    elif fmt == "json":
        yield from _json(path)
    else:
        yield from enumerate(_with_datasets(path, fmt), 1)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _jsonl(path: Path) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}: row {number}: not JSON: {exc}") from None


def _json(path: Path) -> Iterator[tuple[int, object]]:
    try:
        data = json.loads(_text(path))
    except ValueError as exc:
        raise DataError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: a .json data file must hold a list of rows (JSON Lines: use .jsonl)")
    yield from enumerate(data, 1)


def _with_datasets(path: Path, fmt: str):
    """The rows `datasets` reads from `path` (in memory, never from the Hub)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        if fmt == "disk":
            data = datasets.load_from_disk(str(path), keep_in_memory=True)
            if isinstance(data, datasets.DatasetDict):
                if "train" not in data:
                    raise DataError(f"{path}: a saved DatasetDict without a train split (splits: {', '.join(data)}); "
                                    "point task.source.path at one split's directory")
                data = data["train"]
            return data
        with tempfile.TemporaryDirectory(prefix="relayrl-datasets-") as cache:
            return datasets.load_dataset(fmt, data_files=str(path), split="train", cache_dir=cache,
                                         keep_in_memory=True)
    except DataError:
        raise
    except Exception as exc:  # pyarrow's and datasets' many error types: each is "this file cannot be read"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read as {fmt}: {first}") from None
