"""`/api/services`: the registry's cached state and the actions on a service."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from ..registry.probes import DeepCheckResult
from ..registry import Busy, Registry, UnknownService
from ..registry.services import Action, RestartRecord, ServiceStatus
from ..registry.watchdog import Watchdog
from .pool import HostQuery, member

router = APIRouter(prefix="/api/services", tags=["services"])


class HostView(BaseModel):
    host: str
    reachable: bool | None  # None: not polled yet
    detail: str
    checked_at: float | None


class ServicesResponse(BaseModel):
    # local: no Spark, the speech server runs here; external: no Spark, services are
    # reached at their URLs (PARAKEET_URL, MAGPIE_URL) and cannot be started or stopped
    mode: Literal["remote", "local", "external"]
    spark2: HostView
    services: list[ServiceStatus]


class ActionResponse(BaseModel):
    record: RestartRecord
    service: ServiceStatus


class DeepCheckResponse(BaseModel):
    result: DeepCheckResult
    auto_restart: RestartRecord | None
    service: ServiceStatus


def _registry(request: Request, host: str | None) -> Registry:
    return member(request, host).registry


def _status(registry: Registry, name: str) -> ServiceStatus:
    try:
        return registry.status(name)
    except UnknownService as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("", response_model=ServicesResponse)
async def list_services(request: Request, host: HostQuery = None) -> ServicesResponse:
    """Every service of the host as last polled; never waits on it."""
    registry = _registry(request, host)
    poller = registry.docker_poller
    if registry.mode == "local":
        host = HostView(host="localhost", reachable=None, checked_at=poller.updated_at,
                        detail="local mode: no Spark is configured (SPARK2_HOST is empty); "
                               "the speech server runs on this machine")
    elif registry.mode == "external":
        host = HostView(host="", reachable=None, checked_at=None,
                        detail="no Spark is configured (SPARK2_HOST is empty); services are "
                               "reached at their URLs only")
    elif poller.error is not None:
        host = HostView(host=registry.settings.spark2_host, reachable=False,
                        detail=poller.error.message, checked_at=poller.updated_at)
    else:
        polled = poller.data is not None
        host = HostView(host=registry.settings.spark2_host, reachable=polled or None,
                        detail="reachable over SSH" if polled else "not polled yet",
                        checked_at=poller.updated_at)
    return ServicesResponse(mode=registry.mode,  # type: ignore[arg-type]
                            spark2=host, services=registry.statuses())


@router.get("/{name}", response_model=ServiceStatus)
async def get_service(name: str, request: Request, host: HostQuery = None) -> ServiceStatus:
    return _status(_registry(request, host), name)


@router.post("/{name}/deep-check", response_model=DeepCheckResponse)
async def run_deep_check(name: str, request: Request,
                         host: HostQuery = None) -> DeepCheckResponse:
    """Send a real tiny request now; a wedged service is restarted (within budget)."""
    registry = _registry(request, host)
    _status(registry, name)
    watchdog: Watchdog = member(request, host).watchdog
    result, record = await watchdog.check(name)
    return DeepCheckResponse(result=result, auto_restart=record,
                             service=registry.status(name))


@router.post("/{name}/{action}", response_model=ActionResponse,
             responses={404: {"description": "unknown service"},
                        409: {"description": "another action is running on it"}})
async def act(name: str, action: Action, request: Request,
              host: HostQuery = None) -> ActionResponse:
    """Start, stop or restart; a speech server is drained first when another host can
    take its work (its in-flight work finishes, up to DRAIN_TIMEOUT_S)."""
    registry = _registry(request, host)
    _status(registry, name)
    try:
        record = await registry.act(name, action)
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None
    return ActionResponse(record=record, service=registry.status(name))
