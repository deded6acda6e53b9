"""A sliding-window allowance for automatic restarts (default: 3 per 30 min)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RestartBudget:
    def __init__(self, limit: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._spent: deque[float] = deque()

    def used(self) -> int:
        self._expire()
        return len(self._spent)

    def take(self) -> bool:
        """Spend one restart if the window allows it."""
        if self.used() >= self.limit:
            return False
        self._spent.append(self._clock())
        return True

    def seconds_until_free(self) -> float:
        self._expire()
        if len(self._spent) < self.limit:
            return 0.0
        return self._spent[0] + self.window_s - self._clock()

    def _expire(self) -> None:
        now = self._clock()
        while self._spent and now - self._spent[0] >= self.window_s:
            self._spent.popleft()
