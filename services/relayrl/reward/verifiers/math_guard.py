"""Cheap structural checks that keep pathological answers away from sympy.

A model's answer is parsed and compared by math-verify (sympy), whose cost is unbounded: a
bracket nested thousands deep exhausts the parser's recursion, `9^{9^{9^{9}}}` or `10^{10^{7}}`
asks for numbers with billions of digits, `100000!` for a factorial nobody needs. One linear scan
(`shape`) measures what drives that cost: length, bracket nesting, the height of exponent towers
(`a^{b^{c}}` is 2; `**` counts as `^`), the longest digit run anywhere, inside an exponent, and
before a `!`, and whether it is a plain number (no variables: sympy evaluates a tower of number
powers such as `10^{10^{10}}` in full). `too_complex` compares an answer's shape with fixed limits, each relaxed to the gold
answer's own measure (the gold is trusted: an answer may be as complex as it), and names the
first one exceeded: such an answer fails without sympy (the model's fault, never an
infrastructure error).

What this does not cover: cost that no such measure shows (`((99999)!)!`: the parentheses hide
the factorial's digits). Those reach math-verify under a CPU budget (`math_workers.py`),
which fails them too, only slower (seconds of CPU). A correct answer written as a tower of
number powers (`2^{2^{10}}` for `2^{1024}`) fails unless the gold has a tower itself.
"""

from __future__ import annotations

from dataclasses import dataclass

LIMITS = {"chars": 1000, "depth": 12, "tower": 2, "digits": 100, "exponent_digits": 5, "factorial_digits": 3}
"""The most an answer may have of each measure when the gold answer has less."""
_OPEN, _CLOSE = "{([", "})]"
_ARITHMETIC = {"frac", "dfrac", "tfrac", "sqrt", "cdot", "times", "div", "left", "right", "boxed"}


@dataclass(frozen=True)
class Shape:
    """The structural measures of a LaTeX or plain-text answer."""

    chars: int
    depth: int
    """Deepest bracket nesting ({, ( and [ alike)."""
    tower: int
    """Highest exponent nesting: `x^2` is 1, `e^{-x^{2}}` is 2."""
    digits: int
    """Longest run of digits."""
    exponent_digits: int
    """Longest run of digits inside an exponent."""
    factorial_digits: int
    """Longest run of digits directly before a `!`."""
    numeric: bool = False
    """No letters but LaTeX's arithmetic commands (\\frac, \\sqrt, \\cdot, ...): sympy evaluates it."""


def shape(text: str) -> Shape:
    """Measure `text` in one pass (linear time, no recursion)."""
    levels = [0]  # the exponent level of each open bracket group
    depth = tower = digits = exponent_digits = factorial_digits = 0
    bare = None  # the level of a bare (unbraced) exponent token being read, e.g. the 2 of x^2
    run, i, n, numeric = 0, 0, len(text), True
    while i < n:
        c = text[i]
        if c == "\\":
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            if text[i + 1:j] not in _ARITHMETIC and j > i + 1:
                numeric = False
        elif c.isalpha() and (i == 0 or text[i - 1] != "\\"):
            k = i
            while k > 0 and text[k - 1].isalpha():
                k -= 1
            numeric = numeric and k > 0 and text[k - 1] == "\\"  # a letter of a command name is no variable
        level = bare if bare is not None else levels[-1]
        if c.isdigit():
            run += 1
            digits = max(digits, run)
            if level:
                exponent_digits = max(exponent_digits, run)
            i += 1
            continue
        if c == "!" and run:
            factorial_digits = max(factorial_digits, run)
        run = 0
        up = c == "^" or (c == "*" and text.startswith("**", i))
        if up:
            i += 2 if c == "*" else 1
            while i < n and text[i] == " ":
                i += 1
            if i < n and text[i] in _OPEN:
                levels.append(level + 1)
                depth, tower = max(depth, len(levels) - 1), max(tower, level + 1)
                bare = None
                i += 1
            else:
                bare = level + 1
                tower = max(tower, bare)
            continue
        if c in _OPEN:
            levels.append(level)
            depth = max(depth, len(levels) - 1)
            bare = None
        elif c in _CLOSE:
            if len(levels) > 1:
                levels.pop()
            bare = None
        elif bare is not None and not (c.isalnum() or c == "\\" or c == "."):
            bare = None  # the bare exponent token ended
        i += 1
    return Shape(n, depth, tower, digits, exponent_digits, factorial_digits, numeric)


def too_complex(answer: Shape, gold: Shape) -> str | None:
    """Why `answer` is too complex to be worth checking against `gold`, or None."""
    if answer.numeric and answer.tower >= 2 > gold.tower:
        return "answer too complex to check: a tower of powers of numbers (sympy would evaluate it)"
    for name, limit in LIMITS.items():
        value, allowed = getattr(answer, name), max(limit, getattr(gold, name))
        if name == "chars":
            allowed = max(limit, 2 * gold.chars + 100)
        if value > allowed:
            return f"answer too complex to check: {name} {value} > {allowed}"
    return None
