"""Run a function on a fixed schedule."""

import time


def run_every(interval, duration, work, clock=time.monotonic, sleep=time.sleep):
    """Call `work()` at `start + k * interval` for k = 0, 1, ... while less than `duration` seconds
    have passed, whatever time each call takes (as long as it is less than `interval`); return the
    start time of every call, relative to the first."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    start = clock()
    starts = []
    while clock() - start < duration:
        starts.append(clock() - start)
        work()
        sleep(interval)
    return starts
