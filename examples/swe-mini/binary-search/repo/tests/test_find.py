import pytest

from searching.bisect_find import find


def test_missing():
    assert find([1, 3, 5], 4) == -1
    assert find([1, 3, 5], 6) == -1
    assert find([], 1) == -1


@pytest.mark.parametrize("x", [1, 3, 5, 7, 9])
def test_every_position(x):
    items = [1, 3, 5, 7, 9]
    assert find(items, x) == items.index(x)


def test_single_element():
    assert find([4], 4) == 0
