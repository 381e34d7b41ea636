import pytest

from romans.convert import to_roman


def test_simple_additive():
    assert to_roman(3) == "III"
    assert to_roman(1666) == "MDCLXVI"


def test_range_checked():
    with pytest.raises(ValueError):
        to_roman(0)


def test_four_and_nine():
    assert to_roman(4) == "IV"
    assert to_roman(9) == "IX"


def test_large_subtractive():
    assert to_roman(1994) == "MCMXCIV"
    assert to_roman(2449) == "MMCDXLIX"
