"""Exact numbers in math answers: decided without math-verify where the answer allows it.

Most math answers are plain numbers. `fast_compare` (in the reward service, no sympy) decides
integers, decimals and fractions (`\\frac{a}{b}`, `\\dfrac`, `\\tfrac`, `a/b`, with signs) by exact
rational arithmetic on their digit strings, never `int()` on an unbounded string (CPython refuses
to convert more than 4300 digits). `exact_equal` (in a math-verify worker, on parsed sympy
values) decides two exact numbers (no symbols, no floats: `2\\sqrt{2}`, `3\\pi`) structurally or by
their values to 30 digits, without `sympy.simplify` where the values clearly differ.

The rule both keep, the math verifier's: exact numbers must be exactly equal (math-verify's
numeric tolerance alone calls `1/2^{99}` and `1/2^{98}` equal); a decimal on either side keeps
math-verify's rounding tolerance (0.333 may stand for 1/3), so an unequal decimal is left to it.
Each returns None where it cannot decide, and math-verify does.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from relayrl.reward.verifiers.answer import strip_delimiters

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")
_FRACTION = re.compile(r"([+-]?)\\[dt]?frac\{([+-]?\d+)\}\{([+-]?\d+)\}|([+-]?\d+)/([+-]?\d+)")
_MAX_DIGITS = 4000  # below CPython's int() conversion limit


def _integer(s: str) -> str:
    """A plain integer's canonical digits with its sign."""
    negative, digits = s.startswith("-"), s.lstrip("+-").lstrip("0") or "0"
    return "-" + digits if negative and digits != "0" else digits


def _rational(s: str) -> tuple[Fraction, bool] | None:
    """(value, exact) of an integer, decimal or fraction written plainly; exact is False for a
    decimal. None for anything else."""
    if len(s) > _MAX_DIGITS:
        return None
    if _INTEGER.fullmatch(s):
        return Fraction(int(s)), True
    if _DECIMAL.fullmatch(s):
        try:
            return Fraction(Decimal(s)), False
        except (InvalidOperation, ValueError):
            return None
    if m := _FRACTION.fullmatch(s.replace(" ", "")):
        sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) else ("", m.group(4), m.group(5))
        if int(den) == 0:
            return None
        return Fraction(int(num), int(den)) * (-1 if sign == "-" else 1), True
    return None


def fast_compare(answer: str, gold: str) -> bool | None:
    """Exact comparison of plain numbers without sympy; None when math-verify must decide."""
    a, g = strip_delimiters(answer), strip_delimiters(gold)
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(g):  # any number of digits
        return _integer(a) == _integer(g)
    mine, theirs = _rational(a), _rational(g)
    if mine is None or theirs is None:
        return None
    if mine[0] == theirs[0]:
        return True
    # Unequal exact numbers fail; an unequal decimal may still agree under math-verify's rounding.
    return False if mine[1] and theirs[1] else None


def _exact_number(value) -> bool:
    import sympy

    return isinstance(value, sympy.Expr) and not value.free_symbols and not value.has(sympy.Float)


def exact_equal(gold, pred) -> bool | None:
    """For two exact sympy numbers: True when they are the same expression or their difference
    is exactly zero, False when their values, each evaluated to 30 digits (separately: no
    cancellation), differ in the first 20; None otherwise (not both exact numbers, complex, or
    too close to tell)."""
    import sympy

    if not (_exact_number(gold) and _exact_number(pred)):
        return None
    if gold == pred or (gold - pred) == 0:
        return True
    g, p = sympy.N(gold, 30), sympy.N(pred, 30)
    if not (g.is_real and p.is_real) or g == p:
        return None
    return False if abs(g - p) > max(abs(g), abs(p)) * sympy.Float("1e-20", 30) else None


def exact_mismatch(gold, pred) -> bool:
    """True when both are exact numbers (no symbols, no decimals) whose exact values differ.

    math-verify compares numbers with a tolerance, so `1/2^{99}` equals `1/2^{98}` to it; exact
    answers must be exactly equal. Decimals keep math-verify's tolerance (0.333 may stand for
    1/3 where the problem asks for a rounded answer)."""
    import sympy

    if not (_exact_number(gold) and _exact_number(pred)):
        return False
    if (quick := exact_equal(gold, pred)) is not None:
        return not quick
    difference = sympy.simplify(gold - pred)
    return bool(difference.is_number and difference != 0)
