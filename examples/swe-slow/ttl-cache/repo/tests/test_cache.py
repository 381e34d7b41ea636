import hashlib
import time

from expiring.cache import TTLCache


def digest(i):
    """Real work: the value cached for key i."""
    h = str(i).encode()
    for _ in range(2_000):
        h = hashlib.sha256(h).digest()
    return h.hex()


def test_get_after_expiry():
    cache = TTLCache(ttl=1.0)
    cache.set("a", digest(1))
    time.sleep(0.5)
    assert cache.get("a") == digest(1)
    time.sleep(0.7)
    assert cache.get("a") is None


def test_rewrite_extends_the_deadline():
    cache = TTLCache(ttl=1.5)
    cache.set("a", 1)
    time.sleep(1.0)
    cache.set("a", 2)
    time.sleep(1.0)
    assert cache.get("a") == 2
    time.sleep(0.7)
    assert cache.get("a") is None


def test_purge_every_generation():
    cache = TTLCache(ttl=0.5)
    for generation in range(5):
        for i in range(20):
            cache.set((generation, i), digest(i))
        time.sleep(0.8)
        assert cache.purge() == 20


def test_len_counts_live_entries_only():
    cache = TTLCache(ttl=1.0)
    for i in range(50):
        cache.set(i, digest(i))
    time.sleep(1.2)
    for i in range(50, 60):
        cache.set(i, digest(i))
    assert len(cache) == 10
