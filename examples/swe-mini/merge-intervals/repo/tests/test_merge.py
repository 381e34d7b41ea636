from intervals.merge import merge


def test_disjoint_kept():
    assert merge([(5, 6), (1, 2)]) == [(1, 2), (5, 6)]


def test_overlap_merged():
    assert merge([(1, 4), (2, 3), (6, 8)]) == [(1, 4), (6, 8)]


def test_touching_merged():
    assert merge([(1, 2), (2, 3)]) == [(1, 3)]
