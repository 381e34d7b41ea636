import pytest

from units.temperature import celsius_to_fahrenheit, fahrenheit_to_celsius


def test_to_fahrenheit():
    assert celsius_to_fahrenheit(100) == 212


def test_freezing():
    assert fahrenheit_to_celsius(32) == pytest.approx(0)


def test_boiling():
    assert fahrenheit_to_celsius(212) == pytest.approx(100)


def test_round_trip():
    for c in (-40, 0, 37, 250):
        assert fahrenheit_to_celsius(celsius_to_fahrenheit(c)) == pytest.approx(c)
