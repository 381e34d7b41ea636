"""DeepSeek-R1's response format: the format reward and the final answer's extraction.

Shared by every verifier that grades R1-style responses (`math`, and `code` for its format
reward) and by evaluation and distillation, which must read answers exactly as training scores
them. Pure string functions, linear time on adversarial text, no dependencies.

The final answer is the content of the last `<answer>…</answer>` (or the last `\\boxed{}` inside
it), else the last `\\boxed{…}` (balanced braces), else the text after the last `</think>`. Tag
and boxed contents are one expression, so "1 2 3 4 5" inside `\\boxed{}` is not 5.

Special tokens (`<bos>`, `<|im_end|>`, `</s>`) are never stripped before extraction: stripping
would turn `5<bos>5` into something that parses as 5. A run of them at the very end (EOS,
padding) is ignored (`strip_trailing_special`), since nothing after the answer can change it;
the math verifier fails an answer with one anywhere inside (`SPECIAL_TOKEN`).
"""

from __future__ import annotations

import re

SPECIAL_TOKEN = re.compile(
    r"<\|[^<>|]{0,64}\|>"                                   # <|im_end|>, <|endoftext|>
    r"|<\uff5c[^<>]{0,64}\uff5c>"                           # DeepSeek's <｜end▁of▁sentence｜>
    r"|</?(?!(?:think|answer)>)[A-Za-z_][A-Za-z0-9_.\-]{1,63}>"  # <bos>, <pad>, <end_of_turn>
    r"|</?s>")
_THINK_TO_ANSWER = re.compile(r"</think>\s*<answer>")
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def strip_trailing_special(text: str) -> str:
    """Drop whitespace and special tokens at the very end (EOS, padding); linear time."""
    while True:
        text = text.rstrip()
        if not text.endswith(">"):
            return text
        start = text.rfind("<")
        if start < 0 or not SPECIAL_TOKEN.fullmatch(text, start):
            return text
        text = text[:start]


def format_reward(text: str) -> float:
    """1.0 iff `text` matches `^\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*$` (DOTALL).

    Checked without the regex's backtracking, which is quadratic on adversarial text."""
    s = text.strip()
    if not (s.startswith("<think>") and s.endswith("</answer>")):
        return 0.0
    m = _THINK_TO_ANSWER.search(s, len("<think>"))
    return 1.0 if m is not None and m.end() <= len(s) - len("</answer>") else 0.0


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` with balanced braces (`\\{` and `\\}` are escapes); None
    when there is none or the last one is not closed (only that one is scanned: linear time)."""
    pos = len(text)
    while (i := text.rfind("\\boxed", 0, pos)) >= 0:
        j = i + len("\\boxed")
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            depth, k = 0, j
            while k < len(text):
                c = text[k]
                if c == "\\":
                    k += 2
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        return text[j + 1:k]
                k += 1
            return None
        pos = i
    return None


def strip_delimiters(s: str) -> str:
    """`s` without surrounding whitespace and one pair of math delimiters (`$…$`, `\\(…\\)`, ...)."""
    s = s.strip()
    for left, right in _DELIMITERS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            return s[len(left):len(s) - len(right)].strip()
    return s


def extract_answer(text: str) -> tuple[str, str]:
    """(answer, source): source is "answer_tag", "boxed" or "response" (see the module doc)."""
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    if start >= 0:
        content = text[start + len("<answer>"):end]
        boxed = last_boxed(content)
        return strip_delimiters(boxed if boxed is not None else content), "answer_tag"
    boxed = last_boxed(text)
    if boxed is not None:
        return strip_delimiters(boxed), "boxed"
    think_end = text.rfind("</think>")
    return (text[think_end + len("</think>"):] if think_end >= 0 else text).strip(), "response"
