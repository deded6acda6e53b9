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


def test_a_slow_machine_learns_its_pace_and_is_busy_not_hung():
    """Under emulation a 30 s diarization took 600 s: the next one may take 4x that pace."""
    clock = Clock()
    log = WorkLog(hung_after_s=120, hung_rtf=2, clock=clock)
    with log.call("diarize", audio_s=30):
        clock.t += 181
        first = log.report()  # nothing learned yet: the configured bound
        clock.t += 419  # it did finish, 600 s after it started
    assert first.limit_s == 180 and first.hung
    with log.call("diarize", audio_s=30):
        clock.t += 1000
        busy = log.report()
        clock.t += 1521
        hung = log.report()
    assert busy.limit_s == 120 + 4 * 20 * 30 and not busy.hung
    assert hung.hung  # a call that never returns still passes the learned bound
    assert log.rtf("transcribe") == 2  # paces are per stage


def test_a_fast_machine_keeps_the_configured_bound_and_short_calls_teach_nothing():
    clock = Clock()
    log = WorkLog(hung_after_s=120, hung_rtf=2, clock=clock)
    for _ in range(20):
        with log.call("transcribe", audio_s=60):
            clock.t += 3  # 0.05 s per second of audio
    assert log.rtf("transcribe") == 2
    with log.call("transcribe", audio_s=0.5):
        clock.t += 30  # slow, but half a second of audio is mostly overhead
    assert log.rtf("transcribe") == 2
    for _ in range(16):  # the slow call leaves the window of the last 16
        with log.call("transcribe", audio_s=60):
            clock.t += 3
    assert log.rtf("transcribe") == 2
