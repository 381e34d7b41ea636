import time

from heartbeat.watchdog import Watchdog


def payload(n):
    """Real work carried by each heartbeat."""
    return sum(i * 31 % 65521 for i in range(n))


def test_silence_fires_once():
    fired = []
    dog = Watchdog(1.0, lambda: fired.append(time.monotonic())).start()
    started = time.monotonic()
    time.sleep(2.5)
    dog.stop()
    assert len(fired) == 1 and 0.9 <= fired[0] - started < 1.4


def test_stopped_never_fires():
    fired = []
    dog = Watchdog(0.5, lambda: fired.append(1)).start()
    dog.stop()
    time.sleep(1.0)
    assert fired == []


def test_steady_heartbeats_never_fire():
    fired = []
    dog = Watchdog(1.0, lambda: fired.append(1)).start()
    total = 0
    for _ in range(100):  # 30 s of heartbeats, one every 0.3 s
        total += payload(10_000)
        dog.beat()
        time.sleep(0.3)
    dog.stop()
    assert total > 0 and fired == []


def test_fires_one_timeout_after_the_last_beat():
    fired = []
    dog = Watchdog(1.0, lambda: fired.append(time.monotonic())).start()
    for _ in range(25):  # 5 s of heartbeats
        dog.beat()
        time.sleep(0.2)
    last = time.monotonic()
    time.sleep(2.0)
    dog.stop()
    assert len(fired) == 1 and 0.7 <= fired[0] - last < 1.4
