import hashlib
import time

from ticker.periodic import run_every


class Job:
    """A job that hashes for real and then waits on (simulated) I/O for a while."""

    def __init__(self, io_s):
        self.io_s, self.digests = io_s, []

    def __call__(self):
        h = b"seed"
        for _ in range(3_000):
            h = hashlib.sha256(h).digest()
        self.digests.append(h)
        time.sleep(self.io_s)


def test_quick_work_keeps_the_schedule():
    job = Job(io_s=0.0)
    starts = run_every(0.4, 4.0, job)
    assert len(starts) == 10 and len(job.digests) == 10


def test_slow_work_does_not_drift():
    job = Job(io_s=0.2)
    starts = run_every(0.5, 20.0, job)
    assert len(starts) == 40
    assert max(abs(t - k * 0.5) for k, t in enumerate(starts)) < 0.25
