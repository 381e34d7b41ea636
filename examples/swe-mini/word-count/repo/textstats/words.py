"""Word frequencies."""

from collections import Counter


def count_words(text: str) -> dict:
    return dict(Counter(text.split()))
