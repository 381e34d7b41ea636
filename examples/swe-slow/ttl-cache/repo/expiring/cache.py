"""A mapping whose entries expire `ttl` seconds after they were last written."""

import time


class TTLCache:
    def __init__(self, ttl, clock=time.monotonic):
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl, self._clock = ttl, clock
        self._data = {}

    def set(self, key, value):
        self._data[key] = (value, self._clock() + self.ttl)

    def get(self, key, default=None):
        entry = self._data.get(key)
        if entry is None:
            return default
        value, deadline = entry
        if self._clock() >= deadline:
            del self._data[key]
            return default
        return value

    def purge(self):
        """Drop the expired entries; return how many went."""
        now = self._clock()
        expired = [k for k, (_, deadline) in self._data.items() if now >= deadline]
        for key in expired:
            del self._data[key]
        return len(expired)

    def __len__(self):
        """The number of live (not expired) entries."""
        return len(self._data)
