"""Wrong-token throttling by address, on a clock the test moves."""

from __future__ import annotations

from app.access.throttle import Throttle


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def test_locked_after_the_limit_and_free_once_the_window_passes():
    clock = Clock()
    throttle = Throttle(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.5") == 0
        throttle.failed("10.0.0.5")
        clock.t += 1
    assert throttle.retry_after("10.0.0.5") == 57  # the first failure leaves at t=160
    assert throttle.retry_after("10.0.0.6") == 0  # another address is not affected
    clock.t += 57
    assert throttle.retry_after("10.0.0.5") == 0


def test_a_flood_of_addresses_stays_bounded(monkeypatch):
    import app.access.throttle as module
    monkeypatch.setattr(module, "MAX_CLIENTS", 50)
    throttle = Throttle(limit=3, clock=Clock())
    for i in range(500):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) <= 50
