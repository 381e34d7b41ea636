from minicsv.row import split_row


def test_plain():
    assert split_row("a,b,c") == ["a", "b", "c"]


def test_empty_fields():
    assert split_row("a,,c") == ["a", "", "c"]


def test_quoted_comma():
    assert split_row('a,"b,c",d') == ["a", "b,c", "d"]
