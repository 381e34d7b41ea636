from calendarx.leap import days_in_february, is_leap


def test_ordinary_years():
    assert is_leap(2024) and not is_leap(2023)


def test_february():
    assert days_in_february(2024) == 29


def test_centuries():
    assert not is_leap(1900)
    assert not is_leap(2100)


def test_quadricentennial():
    assert is_leap(2000)
