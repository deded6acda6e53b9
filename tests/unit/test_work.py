"""The speech server's account of its model calls (parakeet_patches/work.py)."""

from __future__ import annotations

from work import WorkLog, describe


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_idle_reports_no_calls():
    assert WorkLog(10, 1, Clock()).report().calls == 0


def test_a_long_call_is_busy_until_its_audio_bound_then_hung():
    clock = Clock()
    log = WorkLog(hung_after_s=10, hung_rtf=0.5, clock=clock)
    with log.call("transcribe", audio_s=600):
        clock.t += 300
        busy = log.report()
        clock.t += 11
        hung = log.report()
    assert (busy.calls, busy.stage, busy.limit_s, busy.hung) == (1, "transcribe", 310, False)
    assert hung.hung and hung.waiting_s == 311
    assert "has run 311 s with no model call finishing (limit 310 s)" in describe(hung)


def test_waiting_behind_calls_that_finish_is_progress():
    """A short call queued behind long ones: each finished call restarts its clock."""
    clock = Clock()
    log = WorkLog(hung_after_s=5, hung_rtf=0, clock=clock)
    with log.call("transcribe", 1.0):
        for _ in range(3):
            with log.call("diarize", 60):
                clock.t += 4
        report = log.report()
        assert (report.calls, report.waiting_s, report.hung) == (1, 0, False)
        clock.t += 6
        assert log.report().hung
    assert log.report().calls == 0
