"""Splitting one CSV row."""


def split_row(line: str) -> list:
    return line.split(",")
