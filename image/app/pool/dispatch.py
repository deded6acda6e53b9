"""Spreading speech work over the pool's members.

Each unit of work (a whole recording, a chunk of a long one, one OpenAI-compatible
request) goes to the member with the least outstanding work in seconds of audio,
among those that take work: not drained, of the pool's embedding model, and healthy
(/health answered ok since its last failure here). Each member takes at most
`concurrency` units at once (GPU_IN_FLIGHT, or its HOSTS entry's); past that a unit
waits for a free slot. When no member is healthy the usable ones are tried anyway, so
the caller gets the real error ("cannot reach ...") rather than a guess, and a pool of
one behaves as one host always did.

A unit whose member fails (refused, reset, 5xx, timeout, unreachable) is tried on
another one; a unit the server refused as a request (400/413/415/422) is not, since
any member would refuse it too. Voice prints compare only within one embedding model,
so a member whose model differs from the pool's (the first member's that is known) is
refused work, with the reason in its view.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..audio.speech_client import SpeechClient
from ..errors import NoSpeechHost, RemoteError, UpstreamHTTPError
from ..metrics import POOL_OUTSTANDING, POOL_UNITS
from ..registry import Busy
from .members import Member
from .views import MemberView, PoolView, member_view

log = logging.getLogger(__name__)
T = TypeVar("T")
RECHECK_S = 1.0  # a waiting unit looks again this often (health may have changed)


@dataclass
class Load:
    """A member's live share of the work, and why it takes none (if so)."""

    outstanding_s: float = 0.0  # seconds of audio sent and not answered yet
    in_flight: int = 0
    served: int = 0
    failed: int = 0
    failed_at: float | None = None  # out until its /health answers ok after this
    last_error: str | None = None
    drained_by: str | None = None  # "by the user", or "for its restart (watchdog)"
    drained_at: float | None = None
    manual: bool = False  # drained from the dashboard/API (kept until undone)


@dataclass
class Ran(Generic[T]):
    value: T
    host: str
    failed_on: list[str] = field(default_factory=list)  # members that failed it first


class SpeechPool:
    def __init__(self, members: list[Member], drain_timeout_s: float = 600.0) -> None:
        self.members = {m.name: m for m in members}
        self.load = {m.name: Load() for m in members}
        self.drain_timeout_s = drain_timeout_s
        self._changed = asyncio.Condition()
        capacity = sum(m.concurrency for m in members if m.client is not None)
        self.gate_chunks = asyncio.Semaphore(max(1, capacity))  # chunks cut at once
        for member in members:
            member.registry.guard = self._guard(member.name)

    @property
    def first(self) -> Member:
        """The SPARK2_HOST (or local, or PARAKEET_URL) host: the pages' default."""
        return next(iter(self.members.values()))  # build_members never returns none

    @property
    def serving(self) -> bool:
        """Some host has a speech server configured (else every request is 503)."""
        return any(m.client is not None for m in self.members.values())

    # -- what each member may take -------------------------------------------------

    def model_of(self, member: Member) -> str | None:
        """The embedding model it makes prints with: its /health, else its last answer,
        else its settings' (the HOSTS entry's embedding_model, or EMBEDDING_MODEL)."""
        health = member.asr_health()
        models = (health.body or {}).get("models") if health and health.ok else None
        if isinstance(models, dict) and isinstance(models.get("embedding"), str):
            return models["embedding"]
        if member.client is not None and member.client.models.get("embedding"):
            return member.client.models["embedding"]
        return member.settings.embedding_model

    def reference(self) -> tuple[str, str] | None:
        """(member, model) whose model the pool keeps to: the first known in order, the
        one the voice library was most likely enrolled with."""
        for member in self.members.values():
            model = self.model_of(member)
            if model:
                return member.name, model
        return None

    def refusal(self, member: Member) -> str | None:
        ref, mine = self.reference(), self.model_of(member)
        if ref is None or mine is None or mine == ref[1]:
            return None
        return (f"refused: its embedding model {mine} differs from the pool's {ref[1]} "
                f"(on {ref[0]}); voice prints of different models never compare, so its "
                "chunks could not be matched to the others' speakers")

    def ready(self, member: Member) -> bool:
        """Its /health answered ok since its last failure here, and (a managed host)
        it is reachable over SSH: one that is not cannot be watched or restarted."""
        poller, load = member.asr_poller(), self.load[member.name]
        health = poller.data if poller else None
        if poller is None or health is None or not health.ok or self.unreachable(member):
            return False
        return load.failed_at is None or (poller.updated_at or 0.0) > load.failed_at

    def unreachable(self, member: Member) -> str | None:
        error = member.registry.docker_poller.error if member.managed else None
        return error.message if error is not None else None

    def usable(self, member: Member) -> bool:
        return (member.client is not None and self.load[member.name].drained_by is None
                and self.refusal(member) is None)

    # -- leasing a member ---------------------------------------------------------

    @asynccontextmanager
    async def lease(self, seconds: float, avoid: set[str] = frozenset()  # type: ignore[assignment]
                    ) -> AsyncIterator[Member]:
        member = await self._acquire(seconds, avoid)
        try:
            yield member
        finally:
            await self._release(member, seconds)

    async def _acquire(self, seconds: float, avoid: set[str]) -> Member:
        async with self._changed:
            while True:
                member = self._pick(self._candidates(avoid))
                if member is not None:
                    load = self.load[member.name]
                    load.in_flight += 1
                    load.outstanding_s += seconds
                    POOL_OUTSTANDING.labels(member.name).set(load.outstanding_s)
                    return member
                try:  # every candidate is full: wait for a slot (or a health change)
                    await asyncio.wait_for(self._changed.wait(), RECHECK_S)
                except TimeoutError:
                    pass

    async def _release(self, member: Member, seconds: float) -> None:
        async with self._changed:
            load = self.load[member.name]
            load.in_flight -= 1
            load.outstanding_s = max(0.0, load.outstanding_s - seconds)
            POOL_OUTSTANDING.labels(member.name).set(load.outstanding_s)
            self._changed.notify_all()

    def _candidates(self, avoid: set[str]) -> list[Member]:
        usable = [m for m in self.members.values() if self.usable(m)]
        if not usable:
            raise NoSpeechHost(self.why_none())
        ready = [m for m in usable if self.ready(m)] or usable
        return ([m for m in ready if m.name not in avoid]
                or [m for m in usable if m.name not in avoid] or ready)

    def _pick(self, candidates: list[Member]) -> Member | None:
        order = list(self.members)
        free = [m for m in candidates if self.load[m.name].in_flight < m.concurrency]
        if not free:
            return None
        return min(free, key=lambda m: (self.load[m.name].outstanding_s,
                                        self.load[m.name].in_flight, order.index(m.name)))

    def why_none(self) -> str:
        if not self.members:
            return "no speech server is configured (PARAKEET_URL, SPARK2_HOST or HOSTS)"
        reasons = "; ".join(f"{v.name}: {v.detail}" for v in self.view().members)
        return f"no speech host can take work ({reasons})"

    # -- running work ---------------------------------------------------------------

    async def run(self, seconds: float, what: str,
                  call: Callable[[SpeechClient], Awaitable[T]],
                  attempts: int | None = None) -> Ran[T]:
        """`call` on a leased member's client; a failure moves it to another member
        (`attempts` in all: default one per member, at least two)."""
        tries = attempts or max(2, len(self.members))
        failures: list[tuple[str, RemoteError]] = []
        for _ in range(tries):
            async with self.lease(seconds, {name for name, _ in failures}) as member:
                try:
                    value = await call(member.client)  # type: ignore[arg-type]
                except RemoteError as exc:
                    exc.host = member.name
                    if isinstance(exc, UpstreamHTTPError) and exc.refused:
                        raise
                    self._failed(member, what, exc)
                    failures.append((member.name, exc))
                    continue
                self.load[member.name].served += 1
                POOL_UNITS.labels(member.name, "served").inc()
                return Ran(value, member.name, [name for name, _ in failures])
        raise _gave_up(what, failures)

    async def run_once_each(self, seconds: float, what: str,
                            call: Callable[[SpeechClient], Awaitable[T]]) -> Ran[T]:
        """`run`, at most once per member (a pool of one: once, as before the pool):
        for a whole recording, a synchronous request or a sample, where a second try on
        the same host would double the caller's wait rather than route around a fault."""
        return await self.run(seconds, what, call, attempts=len(self.members))

    def _failed(self, member: Member, what: str, exc: RemoteError) -> None:
        load = self.load[member.name]
        load.failed += 1
        POOL_UNITS.labels(member.name, "failed").inc()
        load.failed_at, load.last_error = time.time(), exc.message
        log.warning("%s: %s failed there: %s", member.name, what, exc.message)
        member.watchdog.kick_wedged(exc)  # a 5xx: deep-check it (and restart if wedged)

    def kick_wedged(self, exc: Exception, kind: str = "asr") -> bool:
        """A speech service answered 5xx: deep-check it on the member it came from
        (every member when unknown); True when `exc` was such an answer."""
        host = getattr(exc, "host", None)
        kicked = False
        for member in self.members.values():
            if host in (None, member.name):
                kicked = member.watchdog.kick_wedged(exc, kind) or kicked
        return kicked

    # -- draining -------------------------------------------------------------------

    async def set_drained(self, name: str, drained: bool) -> None:
        """The user's drain: no new work for `name` (in-flight work finishes)."""
        load = self.load[self.get(name).name]
        if drained and load.drained_by is None and not self._others_usable(name):
            raise Busy(f"{name} is the only host taking work: draining it would leave "
                       "none; add or undrain another host first")
        async with self._changed:
            load.manual = drained
            load.drained_by = "by the user" if drained else None
            load.drained_at = time.time() if drained else None
            self._changed.notify_all()
        log.info("%s: %s by the user", name, "drained" if drained else "back in rotation")

    @asynccontextmanager
    async def drained(self, name: str, reason: str, wait: bool = True) -> AsyncIterator[None]:
        """No new work for `name` while the block runs, its in-flight work finished
        first (`wait`, up to DRAIN_TIMEOUT_S). The only member taking work is not
        drained: work would have nowhere to go (a pool of one works as it always did)."""
        load = self.load[name]
        if load.drained_by is not None or not self._others_usable(name):
            yield
            return
        async with self._changed:
            load.drained_by, load.drained_at = reason, time.time()
            self._changed.notify_all()
        log.info("%s: drained %s (%d unit(s) in flight)", name, reason, load.in_flight)
        try:
            if wait:
                await self.wait_idle(name, self.drain_timeout_s)
            yield
        finally:
            async with self._changed:
                if not load.manual:
                    load.drained_by, load.drained_at = None, None
                self._changed.notify_all()
            log.info("%s: back in rotation (was drained %s)", name, reason)

    async def wait_idle(self, name: str, timeout: float) -> bool:
        """True when `name` has no work in flight (within `timeout`)."""
        load = self.load[name]
        deadline = time.monotonic() + timeout
        async with self._changed:
            while load.in_flight and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._changed.wait(), RECHECK_S)
                except TimeoutError:
                    pass
        if load.in_flight:
            log.warning("%s: %d unit(s) still in flight after %g s of draining; going on",
                        name, load.in_flight, timeout)
        return not load.in_flight

    def _others_usable(self, name: str) -> bool:
        return any(self.usable(m) for m in self.members.values() if m.name != name)

    def _guard(self, name: str) -> Callable[[str, str], object]:
        """The registry's hook around an action on a speech service of `name`:
        restarts, reapplies, installs and upgrades drain it first (the watchdog does
        not wait: a wedged server's in-flight work is failing anyway)."""
        def guard(action: str, by: str) -> object:
            return self.drained(name, f"for its {action} ({by})", wait=by != "watchdog")
        return guard

    # -- reading ----------------------------------------------------------------------

    def get(self, name: str) -> Member:
        try:
            return self.members[name]
        except KeyError:
            known = ", ".join(self.members) or "none"
            raise LookupError(f"no speech host named {name!r} (known: {known})") from None

    def view(self) -> PoolView:
        ref = self.reference()
        views: list[MemberView] = [member_view(self, m) for m in self.members.values()]
        return PoolView(members=views, embedding_model=ref[1] if ref else None,
                        outstanding_s=round(sum(v.outstanding_s for v in views), 1),
                        taking_work=sum(v.state == "active" for v in views))


def _gave_up(what: str, failures: list[tuple[str, RemoteError]]) -> RemoteError:
    """The last failure, its message naming the unit and where it was tried."""
    hosts = [name for name, _ in failures]
    last = failures[-1][1]
    if len(failures) == 1:
        return last
    if len(set(hosts)) == 1:
        last.message = f"{what} failed twice: {last.message}"
    else:
        tried = "; ".join(f"on {name}: {exc.message}" for name, exc in failures)
        last.message = f"{what} failed on every host tried ({tried})"
    last.args = (last.message,)
    return last
