from textstats.words import count_words


def test_plain_words():
    assert count_words("a b a") == {"a": 2, "b": 1}


def test_case_insensitive():
    assert count_words("The the THE") == {"the": 3}


def test_punctuation_stripped():
    assert count_words("The cat. the CAT!") == {"the": 2, "cat": 2}
