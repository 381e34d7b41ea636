"""DeepSeek-R1's language-consistency reward: the share of the reasoning in the prompt's language.

R1 added it because its chains of thought mixed languages; it is "the proportion of target
language words in the CoT". Here the language is approximated by its writing system: each word
(a run of letters) is assigned the Unicode script most of its letters belong to (Latin, Han,
Cyrillic, Arabic, ...; Japanese kana and Korean Hangul count with Han as "CJK", since Japanese
text mixes them), the prompt's script is the one most of its words use, and the reward is the
share of the reasoning's words (inside `<think>…</think>` when present) in that script. Digits,
symbols and LaTeX commands (`\\frac`) are not words. A reasoning without words scores 1.0
(nothing in another language); a prompt without words makes every script acceptable.

What this does not cover: languages that share a script (English and French are both Latin), and
code-switching inside a single word. A fastText language identifier would separate those; this
needs no model download and costs microseconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

_WORD = re.compile(r"[^\W\d_]+")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_GROUPS = {"CJK": "CJK", "HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "IDEOGRAPHIC": "CJK"}


@lru_cache(maxsize=65536)
def _char_script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0] if name else "UNKNOWN"
    return _GROUPS.get(first, first)


def word_scripts(text: str) -> list[str]:
    """The script of each word of `text` (the majority script of its letters)."""
    scripts = []
    for word in _WORD.findall(_LATEX_COMMAND.sub(" ", text)):
        if len(word) == 1 or len(set(word)) == 1:
            scripts.append(_char_script(word[0]))
        else:
            scripts.append(Counter(_char_script(c) for c in word).most_common(1)[0][0])
    return scripts


def dominant_script(text: str) -> str | None:
    """The script most words of `text` are written in; None when it has no words."""
    counts = Counter(word_scripts(text))
    return counts.most_common(1)[0][0] if counts else None


def reasoning_of(response: str) -> str:
    """The chain of thought: the content of `<think>…</think>` when present, else the response."""
    start = response.find("<think>")
    end = response.find("</think>", start + 1)
    if start >= 0 and end > start:
        return response[start + len("<think>"):end]
    return response


def language_consistency(response: str, prompt: str) -> float:
    """Share (0..1) of the reasoning's words written in the prompt's script."""
    target = dominant_script(prompt)
    scripts = word_scripts(reasoning_of(response))
    if target is None or not scripts:
        return 1.0
    return sum(s == target for s in scripts) / len(scripts)
