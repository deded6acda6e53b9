"""The services registry: cached state of every service and the actions on them.

Two kinds of pollers feed it: one for the Docker host (a single `docker inspect`
and `docker stats` for all containers) and one per service for its `/health`.
Readers only ever see the cache; actions take a per-service lock, so a second
action on the same service is refused with 409 instead of queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass

import httpx

from .budget import RestartBudget
from ..config import ServiceSpec, Settings
from ..errors import CommandFailed, ContainerNotFound, NotConfigured, RemoteError
from ..local import LocalProcesses
from ..metrics import RESTARTS
from ..poller import Poller
from .probes import HealthResult, fetch_health
from ..remote.docker import ContainerInfo, Docker
from .services import (Action, ActionView, Held, Observed, RestartRecord, ServiceRuntime,
                       ServiceStatus, container_view, derive_state, memory_view)

log = logging.getLogger(__name__)


class UnknownService(LookupError):
    pass


class Busy(RuntimeError):
    pass


@dataclass(frozen=True)
class DockerSnapshot:
    containers: dict[str, ContainerInfo | None]  # by container name; None: missing
    memory_usage: dict[str, int]


class Registry:
    def __init__(self, settings: Settings, docker: Docker | LocalProcesses | None,
                 http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.docker = docker
        self.http = http
        self.runtime = {s.name: ServiceRuntime(s, budget=RestartBudget(
            settings.auto_restart_max, settings.auto_restart_window_s))
            for s in settings.service_specs()}
        self.docker_poller: Poller[DockerSnapshot] = Poller(
            "docker", self._fetch_docker, settings.poll_interval_s, summarize=_summarize)
        self.health_pollers = {name: self._health_poller(rt.spec)
                               for name, rt in self.runtime.items()}
        self.docker_poller.listeners.append(self._enforce_caps)
        # Set by the pool: entered around every action on a speech (asr) service, to
        # take the host out of rotation first (pool/dispatch.py `drained`).
        self.guard: Callable[[str, str], AbstractAsyncContextManager[None]] | None = None

    def _health_poller(self, spec: ServiceSpec) -> Poller[HealthResult]:
        async def fetch() -> HealthResult:
            return await fetch_health(self.http, spec.url, self.settings.health_timeout_s)

        return Poller(f"{spec.name} /health", fetch, self.settings.poll_interval_s,
                      summarize=lambda h: h.detail)

    def start(self) -> None:
        if self.docker is not None and self.runtime:
            self.docker_poller.start()
        for poller in self.health_pollers.values():
            poller.start()

    async def stop(self) -> None:
        await self.docker_poller.stop()
        for poller in self.health_pollers.values():
            await poller.stop()

    @property
    def mode(self) -> str:
        """remote: a Spark over SSH; local: our own speech server as a child process;
        external: services known by their URLs only (no container host)."""
        if self.settings.remote:
            return "remote"
        return "local" if self.docker is not None else "external"

    def get(self, name: str) -> ServiceRuntime:
        try:
            return self.runtime[name]
        except KeyError:
            known = ", ".join(self.runtime) or "none"
            raise UnknownService(f"no service named {name!r} (known: {known})") from None

    # -- reading -----------------------------------------------------------

    def observed(self, name: str) -> Observed:
        rt = self.get(name)
        snapshot = self.docker_poller.data
        info = snapshot.containers.get(rt.spec.container) if snapshot else None
        error = self.docker_poller.error
        if snapshot is not None and info is None and error is None:
            error = _missing(rt.spec.container)
        return Observed(info=None if error else info, docker_error=error,
                        health=self.health_pollers[name].data, configured=self.docker is not None)

    def status(self, name: str) -> ServiceStatus:
        rt = self.get(name)
        seen = self.observed(name)
        state, detail = derive_state(seen, rt.action, self.settings.startup_grace_s)
        snapshot = self.docker_poller.data
        usage = snapshot.memory_usage.get(rt.spec.container) if snapshot and seen.info else None
        return ServiceStatus(
            name=name, kind=rt.spec.kind, container_name=rt.spec.container, url=rt.spec.url,
            state=state, state_detail=detail,
            container=container_view(seen.info) if seen.info else None,
            health=seen.health, models=seen.health.models if seen.health else [],
            memory=memory_view(rt.spec, seen.info, usage, rt.cap_error),
            restart_count=(seen.info.restart_count if seen.info else 0) + rt.restarts_here,
            auto_restarts_in_window=rt.budget.used(), auto_restart_limit=rt.budget.limit,
            auto_restart_window_s=rt.budget.window_s,
            history=list(rt.history), deep_check=rt.deep_check, action=rt.action,
            checked_at=self.docker_poller.updated_at)

    def statuses(self) -> list[ServiceStatus]:
        return [self.status(name) for name in self.runtime]

    # -- acting ------------------------------------------------------------

    async def act(self, name: str, action: Action, *, by: str = "user",
                  reason: str = "requested from the API") -> RestartRecord:
        """Run one action; raises Busy when another is running on this service."""
        async with self.claim(name, action, by) as rt:
            return await self.perform(rt, action, by, reason)

    @asynccontextmanager
    async def claim(self, name: str, action: Held, by: str) -> AsyncIterator[ServiceRuntime]:
        """Hold the service for one action or job; a second claim raises Busy."""
        rt = self.ensure_free(name)
        rt.action = ActionView(action=action, by=by, started_at=time.time())  # type: ignore[arg-type]
        guarded = self.guard if self.guard and rt.spec.kind == "asr" else None
        try:
            async with guarded(action, by) if guarded else nullcontext():
                yield rt
        finally:
            rt.action = None
            await self.docker_poller.refresh(fresh=True)
            await self.health_pollers[name].refresh(fresh=True)

    def ensure_free(self, name: str) -> ServiceRuntime:
        """The service's runtime; Busy when an action or job holds it."""
        rt = self.get(name)
        if self.docker is None:
            raise NotConfigured(f"{name} is reached at its URL only ({rt.spec.url}): "
                                "starting, stopping and restarting it need a Spark "
                                "(SPARK2_HOST) or local mode")
        if rt.action is not None:
            since = time.time() - rt.action.started_at
            raise Busy(f"{rt.action.action} of {name} is already running "
                       f"(started {since:.0f} s ago by {rt.action.by}); try again when it ends")
        return rt

    async def perform(self, rt: ServiceRuntime, action: Action, by: str,
                      reason: str) -> RestartRecord:
        """Do an action on a claimed service and record it in its history."""
        record = RestartRecord(at=time.time(), action=action, by=by, reason=reason)  # type: ignore[arg-type]
        rt.history.append(record)
        try:
            await self._do(rt, action)
        except RemoteError as exc:
            record.outcome = f"failed: {exc.message}"
            raise
        record.outcome = "ok"
        RESTARTS.labels(rt.spec.name, action, by).inc()
        return record

    async def _do(self, rt: ServiceRuntime, action: Action) -> None:
        assert self.docker is not None
        container = rt.spec.container
        if action == "stop":
            rt.desired_running = False
            await self.docker.stop(container, self.settings.stop_grace_s)
            return
        rt.desired_running = True
        if action == "start":
            await self.docker.start(container)
        else:
            await self.docker.restart(container, self.settings.stop_grace_s)
        rt.restarts_here += action == "restart"
        await self.apply_memory_cap(rt)

    async def apply_memory_cap(self, rt: ServiceRuntime,
                               info: ContainerInfo | None = None) -> None:
        """`docker update --memory X --memory-swap X` unless docker already enforces X."""
        cap = rt.spec.memory_limit_bytes
        if cap is None or self.docker is None:
            return
        if info is not None and _capped(rt, info):
            return
        try:
            await self.docker.update_memory(rt.spec.container, cap)
        except RemoteError as exc:
            rt.cap_error = f"could not apply the memory cap {rt.spec.memory_limit}: {exc.message}"
            log.error("%s: %s", rt.spec.name, rt.cap_error)
            return
        if rt.cap_error or info is not None:
            log.info("%s: memory cap %s applied (swap forbidden)", rt.spec.name,
                     rt.spec.memory_limit)
        rt.cap_error = None

    # -- polling -----------------------------------------------------------

    async def _enforce_caps(self, snapshot: DockerSnapshot) -> None:
        # Covers startup and a container recreated behind our back; restarts done
        # from here apply the cap themselves (see `_do`).
        for rt in self.runtime.values():
            info = snapshot.containers.get(rt.spec.container)
            if info is not None and rt.action is None and not _capped(rt, info):
                await self.apply_memory_cap(rt, info)
                self.docker_poller.poke()  # show the new limit without waiting a cycle

    async def _fetch_docker(self) -> DockerSnapshot:
        assert self.docker is not None
        names = sorted({rt.spec.container for rt in self.runtime.values()})
        containers = await self.docker.inspect_many(names)
        running = [n for n, info in containers.items() if info and info.running]
        try:
            usage = await self.docker.memory_usage(running)
        except CommandFailed:  # a container stopped between the two calls
            usage = {}
        return DockerSnapshot(containers, usage)


def _capped(rt: ServiceRuntime, info: ContainerInfo) -> bool:
    cap = rt.spec.memory_limit_bytes
    return cap is None or (info.memory_limit == cap and info.memory_swap == cap)


def _missing(container: str) -> RemoteError:
    return ContainerNotFound(["docker", "inspect", container], 1, "", container)


def _summarize(snapshot: DockerSnapshot) -> str:
    parts = []
    for name, info in snapshot.containers.items():
        if info is None:
            parts.append(f"{name}=missing")
        else:
            oom = " (OOM killed)" if info.killed_for_memory else ""
            parts.append(f"{name}={info.status}{oom}")
    return ", ".join(parts)
