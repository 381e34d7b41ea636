import time

import pytest

from throttle.bucket import TokenBucket


def checksum(n):
    """Real work done for each acquired token."""
    return sum(i * i % 7919 for i in range(n))


def test_rejects_bad_config():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


def test_steady_rate():
    bucket = TokenBucket(rate=5, capacity=1)
    started = time.monotonic()
    total = 0
    for _ in range(16):
        bucket.acquire()
        total += checksum(20_000)
    elapsed = time.monotonic() - started
    assert total > 0
    assert 2.9 <= elapsed < 4.5


def test_burst_is_capped_after_idle():
    bucket = TokenBucket(rate=4, capacity=2)
    time.sleep(1.5)  # idle: the bucket fills up to its capacity, no further
    started = time.monotonic()
    for _ in range(10):
        bucket.acquire()
    elapsed = time.monotonic() - started
    assert elapsed >= 1.9  # 2 tokens in the bucket, 8 more at 4 per second
