from webutil.slug import slugify


def test_lowercase_word():
    assert slugify("Hello") == "hello"


def test_collapses_separators():
    assert slugify("Hello,  World!") == "hello-world"


def test_no_edge_dashes():
    assert slugify("  spaced out  ") == "spaced-out"
