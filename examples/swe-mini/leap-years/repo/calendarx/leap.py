"""Gregorian calendar helpers."""


def is_leap(year: int) -> bool:
    return year % 4 == 0


def days_in_february(year: int) -> int:
    return 29 if is_leap(year) else 28
