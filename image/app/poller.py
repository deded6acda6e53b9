"""One poller per remote thing; every reader shares its last result.

Modelled on Home Assistant's DataUpdateCoordinator: a single task fetches on an
interval, readers get the cached value (never a remote call of their own), a
forced refresh while one is in flight joins it, and a line is logged when the
summary of the result changes, not on every poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from .errors import RemoteError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Poller(Generic[T]):
    def __init__(self, name: str, fetch: Callable[[], Awaitable[T]], interval: float, *,
                 summarize: Callable[[T], str] = str,
                 listeners: list[Callable[[T], Awaitable[None]]] | None = None) -> None:
        self.name = name
        self.interval = interval
        self._fetch = fetch
        self._summarize = summarize
        self.listeners = listeners or []
        self.data: T | None = None
        self.error: RemoteError | None = None
        self.updated_at: float | None = None  # wall clock of the last finished poll
        self._summary: str | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def refresh(self, *, fresh: bool = False) -> None:
        """Poll now, or join the poll already in flight.

        `fresh`: the caller has just changed the remote thing (a restart), so a poll
        that was already in flight may have seen the old state: wait it out and poll
        again rather than join it.
        """
        stale = self._inflight if fresh else None
        if stale is not None and not stale.done():
            await asyncio.shield(stale)
        if self._inflight is None or self._inflight.done() or self._inflight is stale:
            self._inflight = asyncio.create_task(self._poll())
        await asyncio.shield(self._inflight)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name=f"poller:{self.name}")

    async def stop(self) -> None:
        for task in (self._loop_task, self._inflight):
            if task is not None:
                task.cancel()
        for task in (self._loop_task, self._inflight):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    def poke(self) -> None:
        """Ask the loop for an early poll without waiting for it."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self.refresh()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass

    async def _poll(self) -> None:
        try:
            data = await self._fetch()
        except RemoteError as exc:
            self.error = exc
            self._record(f"error: {exc.message}", logging.WARNING)
        except Exception as exc:  # a bug must not kill the loop; report it like a fault
            log.exception("poller %s crashed", self.name)
            self.error = RemoteError(f"internal error while polling {self.name}: {exc!r}")
            self._record(f"error: {exc!r}", logging.ERROR)
        else:
            self.data, self.error = data, None
            self._record(self._summarize(data), logging.INFO)
            await self._notify(data)
        finally:
            self.updated_at = time.time()

    async def _notify(self, data: T) -> None:
        for listener in self.listeners:
            try:
                await listener(data)
            except Exception:
                log.exception("listener of poller %s failed", self.name)

    def _record(self, summary: str, level: int) -> None:
        if summary != self._summary:
            log.log(level, "%s: %s", self.name, summary)
            self._summary = summary
