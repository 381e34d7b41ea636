"""A watchdog: calls `on_timeout` once when no heartbeat has come for `timeout` seconds."""

import threading
import time


class Watchdog:
    def __init__(self, timeout, on_timeout, check_every=0.05, clock=time.monotonic):
        self.timeout, self.on_timeout, self.check_every, self._clock = timeout, on_timeout, check_every, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = self._last_beat = None
        self.fired_at = None

    def start(self):
        self._started = self._last_beat = self._clock()
        self._thread.start()
        return self

    def beat(self):
        """Something is alive: the timeout counts from now."""
        self._last_beat = self._clock()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(self.check_every):
            if self.fired_at is None and self._clock() - self._started > self.timeout:
                self.fired_at = self._clock()
                self.on_timeout()
