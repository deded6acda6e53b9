"""Wrong-token guesses are limited per client address.

After LIMIT wrong tokens (at /login or as a bearer) within WINDOW_S, that address is
refused with 429 until the oldest failure leaves the window, even with the right
token: a lockout that answers the same for every guess gives a guesser nothing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from fastapi import HTTPException

LIMIT = 10
WINDOW_S = 60.0
MAX_CLIENTS = 10_000  # bounds the memory a flood of addresses can take


class Throttle:
    def __init__(self, limit: int = LIMIT, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        if client not in self._failures:
            return 0.0
        failures = self._recent(client)
        if len(failures) < self.limit:
            return 0.0
        return max(0.1, failures[0] + self.window_s - self._clock())

    def forget(self, client: str) -> None:
        """Clear an address's failures (an operator's override; tests)."""
        self._failures.pop(client, None)

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= MAX_CLIENTS:
            self._prune()
        self._recent(client).append(self._clock())

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= self._clock() - self.window_s:
            failures.popleft()
        return failures

    def _prune(self) -> None:
        for client in list(self._failures):
            if not self._recent(client):
                del self._failures[client]
        if len(self._failures) >= MAX_CLIENTS:  # all busy: forget the oldest
            oldest = min(self._failures, key=lambda c: self._failures[c][-1])
            del self._failures[oldest]


class Throttled(HTTPException):
    kind = "throttled"

    def __init__(self, wait_s: float) -> None:
        super().__init__(429, f"too many wrong tokens from this address; retry in "
                              f"{math.ceil(wait_s)} s",
                         headers={"Retry-After": str(math.ceil(wait_s))})
