"""Retry a call with exponential backoff."""

import time


def retry(fn, attempts, first_delay, factor=2.0, max_delay=None, retry_on=(Exception,), sleep=time.sleep):
    """Call `fn` until it returns. After the k-th failure wait `first_delay * factor ** (k - 1)`
    seconds (at most `max_delay`); after `attempts` failures raise the last error. Errors that are
    not `retry_on` propagate at once."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on:
            if attempt == attempts:
                raise
            sleep(delay if max_delay is None else min(delay, max_delay))
            delay = first_delay * factor
