import time

import pytest

from patience.retry import retry


class Flaky:
    """Fails `failures` times, then returns a checksum computed for real."""

    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"failure {self.calls}")
        return sum(i * i % 104729 for i in range(200_000))


def timed(fn):
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


def test_no_retry_on_other_errors():
    def broken():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry(broken, attempts=5, first_delay=10, retry_on=(ConnectionError,))


def test_gives_up_with_the_last_error():
    flaky = Flaky(failures=10)
    with pytest.raises(ConnectionError, match="failure 3"):
        retry(flaky, attempts=3, first_delay=0.2)
    assert flaky.calls == 3


def test_backoff_doubles():
    flaky = Flaky(failures=4)
    result, elapsed = timed(lambda: retry(flaky, attempts=5, first_delay=0.5))
    assert result > 0 and flaky.calls == 5
    assert 7.4 <= elapsed < 9.5  # 0.5 + 1 + 2 + 4


def test_max_delay_caps_the_wait():
    flaky = Flaky(failures=5)
    result, elapsed = timed(lambda: retry(flaky, attempts=6, first_delay=0.5, max_delay=1.5))
    assert result > 0
    assert 5.9 <= elapsed < 7.5  # 0.5 + 1 + 1.5 + 1.5 + 1.5
