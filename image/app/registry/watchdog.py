"""Brings wedged or memory-killed services back, within a restart budget.

Two triggers: a failed deep check (periodic or on demand) and a container that
docker reports as killed for memory. Each auto-restart spends from the service's
budget (AUTO_RESTART_MAX per AUTO_RESTART_WINDOW_S), is logged, and appears in
the service's history. A service the user stopped is left stopped.
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import RemoteError, UpstreamHTTPError
from ..metrics import OOM_KILLS
from .probes import DeepCheckResult, deep_check
from .core import Busy, DockerSnapshot, Registry
from .services import RestartRecord, ServiceRuntime

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.settings = registry.settings
        self._tasks: set[asyncio.Task[object]] = set()
        self._pending: set[str] = set()  # services with an auto-restart queued
        self._loop: asyncio.Task[None] | None = None
        registry.docker_poller.listeners.append(self._on_snapshot)

    def start(self) -> None:
        if self.registry.docker is not None and self.registry.runtime:
            self._loop = asyncio.create_task(self._deep_check_loop(), name="deep-checks")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def check(self, name: str) -> tuple[DeepCheckResult, RestartRecord | None]:
        """Deep-check one service; restart it when the check says it is wedged."""
        rt = self.registry.get(name)
        result = await deep_check(self.registry.http, rt.spec, self.settings.deep_check_timeout_s)
        rt.deep_check = result
        if result.verdict != "failed":
            return result, None
        log.warning("%s: deep check failed: %s", name, result.detail)
        if not self._may_restart(rt):
            return result, None
        return result, await self.auto_restart(rt, f"deep check failed: {result.detail}")

    def kick_wedged(self, exc: Exception, kind: str = "asr") -> bool:
        """After a speech service answered 5xx, deep-check every service of its kind;
        True when `exc` was such an answer."""
        if not (isinstance(exc, UpstreamHTTPError) and exc.status >= 500):
            return False
        for name, rt in self.registry.runtime.items():
            if rt.spec.kind == kind:
                self.kick(name)
        return True

    def kick(self, name: str) -> None:
        """Deep-check a service soon, without waiting (e.g. after it answered 500)."""
        if name in self.registry.runtime and name not in self._pending:
            rt = self.registry.get(name)
            self._spawn(rt, self.check(name))

    async def auto_restart(self, rt: ServiceRuntime, reason: str) -> RestartRecord | None:
        name = rt.spec.name
        if not rt.budget.take():
            wait = rt.budget.seconds_until_free()
            log.error("%s: NOT restarting (%s): %d auto-restarts already in the last %.0f min; "
                      "next allowed in %.0f s", name, reason, rt.budget.limit,
                      rt.budget.window_s / 60, wait)
            return None
        log.warning("%s: auto-restart: %s", name, reason)
        try:
            return await self.registry.act(name, "restart", by="watchdog", reason=reason)
        except Busy:
            return None  # someone else is already acting on it
        except RemoteError as exc:
            log.error("%s: auto-restart failed: %s", name, exc.message)
            return rt.history[-1] if rt.history else None

    def _may_restart(self, rt: ServiceRuntime) -> bool:
        # A service still loading its models answers 503 by design: not wedged.
        status = self.registry.status(rt.spec.name)
        return (rt.desired_running and rt.action is None and status.container is not None
                and status.state != "starting")

    async def _on_snapshot(self, snapshot: DockerSnapshot) -> None:
        # Runs inside the docker poll: restarts go to tasks, since they refresh that poller.
        for rt in self.registry.runtime.values():
            info = snapshot.containers.get(rt.spec.container)
            if info is None or not info.killed_for_memory:
                continue
            if rt.oom_seen != info.finished_at:  # one count per kill, not per poll
                rt.oom_seen = info.finished_at
                OOM_KILLS.labels(rt.spec.name).inc()
            if rt.spec.name in self._pending:
                continue
            if self._may_restart(rt):
                cap = rt.spec.memory_limit or f"{info.memory_limit} bytes"
                self._spawn(rt, self.auto_restart(rt, f"killed for memory (OOM) at its {cap} cap"))

    async def _deep_check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.deep_check_interval_s)
            for name in list(self.registry.runtime):
                seen = self.registry.observed(name)
                if seen.info is not None and seen.info.running:
                    try:
                        await self.check(name)
                    except Exception:  # keep checking the others, and next time
                        log.exception("%s: deep check crashed", name)

    def _spawn(self, rt: ServiceRuntime, coro: object) -> None:
        name = rt.spec.name
        self._pending.add(name)
        task = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)

        def done(finished: asyncio.Task[object]) -> None:
            self._tasks.discard(finished)
            self._pending.discard(name)

        task.add_done_callback(done)
