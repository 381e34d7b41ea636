"""A token-bucket rate limiter: on average at most `rate` acquisitions per second, in bursts of
at most `capacity`."""

import time


class TokenBucket:
    """Tokens refill continuously at `rate` per second up to `capacity`; each acquisition takes one."""

    def __init__(self, rate, capacity, clock=time.monotonic, sleep=time.sleep):
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be positive and capacity at least 1")
        self.rate, self.capacity = rate, capacity
        self._clock, self._sleep = clock, sleep
        self._tokens = float(capacity)
        self._last = clock()

    def _refill(self):
        now = self._clock()
        self._tokens = self._tokens + (now - self._last) * self.rate
        self._last = now

    def try_acquire(self):
        """Take a token if one is there; True if taken."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def acquire(self):
        """Block until a token is taken; return the seconds waited."""
        waited = 0.0
        while not self.try_acquire():
            pause = (1 - self._tokens) / self.rate
            self._sleep(pause)
            waited += pause
        return waited
