"""pass@1 averaged over k samples and cons@k (majority vote), as the DeepSeek-R1 paper reports them.

pass@1 of one problem is the fraction of its k samples that are correct; a dataset's pass@1 is
the mean over problems. cons@k of one problem is 1 when the answer most of its k samples agree on
is correct. Voting counts extracted final answers (compared as normalised strings, so "18" and
"18.0" are different votes); samples with no answer do not vote, and a problem with no answer at
all scores 0. Ties: among answers with the same count, the one that appears first in sample order
wins (deterministic for a fixed seed; documented rather than randomised so results reproduce).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean


@dataclass(frozen=True)
class Sample:
    """One scored sample of one problem."""

    answer: str
    """The extracted final answer ("" when none could be extracted)."""
    correct: bool
    """Whether the verifier judged this sample correct."""


def normalise(answer: str) -> str:
    """The voting key of an answer: surrounding whitespace stripped, inner runs collapsed."""
    return " ".join(answer.split())


def pass_at_1(samples: list[Sample]) -> float:
    """Fraction of one problem's samples that are correct."""
    if not samples:
        raise ValueError("pass@1 of a problem needs at least one sample")
    return sum(s.correct for s in samples) / len(samples)


def majority(samples: list[Sample]) -> Sample | None:
    """The sample carrying the most frequent non-empty answer (first-seen wins ties); None when
    no sample has an answer."""
    counts: dict[str, int] = {}
    first: dict[str, Sample] = {}
    for s in samples:
        key = normalise(s.answer)
        if not key:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, s)
    if not counts:
        return None
    best = max(counts, key=lambda key: counts[key])  # max keeps the first key among equal counts
    return first[best]


def cons_at_k(samples: list[Sample]) -> float:
    """1.0 when the majority answer of one problem's samples is correct, else 0.0.

    The majority answer's correctness is that of its first sample: samples with the same
    normalised answer get the same verdict from a deterministic verifier."""
    if not samples:
        raise ValueError("cons@k of a problem needs at least one sample")
    voted = majority(samples)
    return float(voted is not None and voted.correct)


def aggregate(problems: list[list[Sample]]) -> dict:
    """Dataset-level figures: mean pass@1, mean cons@k, n problems, k samples per problem."""
    if not problems:
        raise ValueError("no problems to aggregate")
    ks = {len(p) for p in problems}
    if len(ks) != 1:
        raise ValueError(f"every problem needs the same number of samples, got {sorted(ks)}")
    return {"pass@1": fmean(pass_at_1(p) for p in problems),
            "cons@k": fmean(cons_at_k(p) for p in problems),
            "n": len(problems), "k": ks.pop()}
