"""The API's view of a service, and the one function that decides its state label."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from .budget import RestartBudget
from ..config import ServiceSpec
from ..errors import RemoteError
from .probes import DeepCheckResult, HealthResult
from ..remote.docker import ContainerInfo

State = Literal["healthy", "starting", "unhealthy", "stopped", "oom_killed", "restarting",
                "missing", "unreachable", "unknown"]
Action = Literal["start", "stop", "restart"]
Held = Literal["start", "stop", "restart", "install", "upgrade", "rollback"]  # + jobs


class ContainerView(BaseModel):
    status: str
    running: bool
    oom_killed: bool
    exit_code: int
    started_at: str | None
    finished_at: str | None
    restart_count: int  # docker's count of restart-policy restarts
    docker_health: str | None


class MemoryView(BaseModel):
    usage_bytes: int | None = None
    limit_bytes: int | None = None  # what docker enforces now (None: unlimited)
    cap_bytes: int | None = None  # what the settings ask for
    cap_enforced: bool = False  # limit == cap and swap forbidden
    cap_error: str | None = None


By = Literal["user", "watchdog", "speech-models", "speech-server"]


class RestartRecord(BaseModel):
    at: float
    action: Action
    by: By
    reason: str
    outcome: str = "running"


class ActionView(BaseModel):
    action: Held
    by: By
    started_at: float


class ServiceStatus(BaseModel):
    name: str
    kind: str
    container_name: str
    url: str
    state: State
    state_detail: str
    container: ContainerView | None = None
    health: HealthResult | None = None
    models: list[str] = []
    memory: MemoryView
    restart_count: int = 0  # docker's restart-policy restarts + restarts done from here
    auto_restarts_in_window: int = 0
    auto_restart_limit: int = 0
    auto_restart_window_s: float = 0
    history: list[RestartRecord] = []
    deep_check: DeepCheckResult | None = None
    action: ActionView | None = None
    checked_at: float | None = None


@dataclass
class Observed:
    """The cached facts one status is derived from."""

    info: ContainerInfo | None
    docker_error: RemoteError | None
    health: HealthResult | None
    configured: bool = True


@dataclass
class ServiceRuntime:
    """What the control plane keeps per service between polls."""

    spec: ServiceSpec
    desired_running: bool = True
    action: ActionView | None = None
    deep_check: DeepCheckResult | None = None
    restarts_here: int = 0
    history: deque[RestartRecord] = field(default_factory=lambda: deque(maxlen=50))
    cap_error: str | None = None
    oom_seen: str | None = None  # finished_at of the last OOM kill counted
    budget: RestartBudget = field(default_factory=lambda: RestartBudget(3, 1800))


def derive_state(seen: Observed, action: ActionView | None, grace_s: float,
                 now: float | None = None) -> tuple[State, str]:
    """Name the state a person should see, with a sentence saying why."""
    if not seen.configured:  # no container host: the service is known by its URL alone
        return _url_only_state(seen.health)
    if seen.docker_error is not None and seen.info is None:
        if seen.docker_error.kind == "container_not_found":
            return "missing", seen.docker_error.message
        return "unreachable", seen.docker_error.message
    info = seen.info
    if info is None:
        return "unknown", "waiting for the first poll"
    if action is not None and action.action != "stop":
        return "restarting", f"{action.action} in progress ({action.by})"
    return _container_state(info, seen.health, grace_s, now or time.time())


def _url_only_state(health: HealthResult | None) -> tuple[State, str]:
    if health is None:
        return "unknown", "health not checked yet"
    if health.ok:
        return "healthy", "/health answers ok (no container host: reached by URL only)"
    return "unhealthy", health.detail


def _container_state(info: ContainerInfo, health: HealthResult | None, grace_s: float,
                     now: float) -> tuple[State, str]:
    if info.killed_for_memory:
        return "oom_killed", (f"killed for exceeding its memory limit (exit {info.exit_code}) "
                              f"at {info.finished_at}")
    if info.status == "restarting":
        return "restarting", "docker is restarting it"
    if not info.running:
        return "stopped", f"container {info.status} (exit code {info.exit_code})"
    if health is not None and health.ok:
        return "healthy", "running and /health answers ok"
    detail = health.detail if health else "health not checked yet"
    if _seconds_since(info.started_at, now) < grace_s:
        return "starting", f"running, models may still be loading: {detail}"
    return "unhealthy", f"running but {detail}"


def _seconds_since(stamp: str | None, now: float) -> float:
    if not stamp:
        return float("inf")
    # docker gives nanoseconds; datetime takes at most microseconds
    head, _, frac = stamp.rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    return now - parsed.timestamp()


def container_view(info: ContainerInfo) -> ContainerView:
    return ContainerView(status=info.status, running=info.running, oom_killed=info.oom_killed,
                         exit_code=info.exit_code, started_at=info.started_at,
                         finished_at=info.finished_at, restart_count=info.restart_count,
                         docker_health=info.health)


def memory_view(spec: ServiceSpec, info: ContainerInfo | None, usage: int | None,
                cap_error: str | None) -> MemoryView:
    cap = spec.memory_limit_bytes
    limit = info.memory_limit or None if info else None
    enforced = bool(cap and info and info.memory_limit == cap and info.memory_swap == cap)
    return MemoryView(usage_bytes=usage, limit_bytes=limit, cap_bytes=cap,
                      cap_enforced=enforced, cap_error=cap_error)
