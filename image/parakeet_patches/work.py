"""Model calls in progress, so `/health` can tell a busy server from a hung one.

A deep check queued behind a 10-minute chunk is slow, not a sign of a wedge: the
server reports what it is working on, and spark-control's watchdog defers while the
work is within bounds. A call is *hung* when no model call has finished for longer
than `HUNG_AFTER_S + HUNG_RTF x (seconds of audio of the oldest call)`: a GPU call
that never returns shows here while `/health` itself still answers.

HUNG_RTF is what the operator expects of the hardware; the server also learns its own
pace: each finished call of at least MIN_LEARN_S of audio records seconds of work per
second of audio for its stage, and a stage's bound uses LEARN_FACTOR times the slowest
of its last RECENT calls when that is larger. Slow hardware (an ARM64 image under
emulation runs ~26x slower) is then called busy, not hung, from its second call on;
a model call that never returns still passes any finite bound.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import BaseModel

LEARN_FACTOR = 4.0  # a call may run this many times the slowest recent pace
RECENT = 16
MIN_LEARN_S = 1.0  # shorter calls are mostly overhead: their pace says little


class WorkReport(BaseModel):
    calls: int  # model calls running or waiting for the model
    stage: str | None = None  # of the oldest call
    audio_s: float | None = None  # seconds of audio of the oldest call
    waiting_s: float = 0.0  # since the oldest call could have started (no call finished)
    limit_s: float | None = None  # waiting_s beyond this is a hung call
    hung: bool = False


@dataclass
class _Call:
    stage: str
    audio_s: float
    started: float


class WorkLog:
    def __init__(self, hung_after_s: float | None = None, hung_rtf: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hung_after_s = _env("HUNG_AFTER_S", 120.0) if hung_after_s is None else hung_after_s
        self.hung_rtf = _env("HUNG_RTF", 2.0) if hung_rtf is None else hung_rtf
        self._now = clock
        self._calls: dict[int, _Call] = {}
        self._finished = 0.0  # when the last call finished
        self._pace: dict[str, deque[float]] = {}  # stage -> seconds per second of audio
        self._lock = threading.Lock()
        self._next = 0

    @contextmanager
    def call(self, stage: str, audio_s: float) -> Iterator[None]:
        with self._lock:
            key, self._next = self._next, self._next + 1
            self._calls[key] = _Call(stage, audio_s, self._now())
        try:
            yield
        finally:
            with self._lock:
                done = self._calls.pop(key)
                self._finished = self._now()
                self._learn(done, self._finished - done.started)

    def _learn(self, call: _Call, seconds: float) -> None:
        if call.audio_s >= MIN_LEARN_S:
            recent = self._pace.setdefault(call.stage, deque(maxlen=RECENT))
            recent.append(seconds / call.audio_s)

    def rtf(self, stage: str) -> float:
        """Seconds of work allowed per second of audio for `stage` before it is hung."""
        learned = max(self._pace.get(stage) or [0.0])
        return max(self.hung_rtf, LEARN_FACTOR * learned)

    def report(self) -> WorkReport:
        with self._lock:
            if not self._calls:
                return WorkReport(calls=0)
            oldest = min(self._calls.values(), key=lambda c: c.started)
            # Calls share the model: the oldest may wait while others finish, which is progress.
            waiting = self._now() - max(oldest.started, self._finished)
            limit = self.hung_after_s + self.rtf(oldest.stage) * oldest.audio_s
            return WorkReport(calls=len(self._calls), stage=oldest.stage,
                              audio_s=round(oldest.audio_s, 2), waiting_s=round(waiting, 2),
                              limit_s=round(limit, 2), hung=waiting > limit)


def describe(report: WorkReport) -> str:
    if report.hung:
        return (f"a {report.stage} call on {report.audio_s:g} s of audio has run "
                f"{report.waiting_s:g} s with no model call finishing (limit {report.limit_s:g} s): "
                f"the model is hung")
    return f"{report.calls} model call(s) in progress, oldest {report.stage} for {report.waiting_s:g} s"


def _env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default
