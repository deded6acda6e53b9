"""`/api/host`: Spark 2's memory, swap, load, disk and GPU (in local mode: this machine)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from ..host.docker_disk import PruneResult
from ..host.health import HostHealth, HostHistoryResponse, HostStatus
from ..registry import Busy
from .pool import HostQuery, member

router = APIRouter(prefix="/api/host", tags=["host"])


@router.get("", response_model=HostStatus)
async def host_now(request: Request, host: HostQuery = None) -> HostStatus:
    """The last reading (cached: one poll every HOST_POLL_INTERVAL_S for every reader).
    `reachable` false with `error` when the host cannot be read: never zeros. GPU
    figures the GPU does not report are null, with `gpu_detail` saying why."""
    health: HostHealth = member(request, host).host_health
    return health.status()


@router.get("/history", response_model=HostHistoryResponse)
async def host_history(request: Request,
                       minutes: Annotated[float, Query(gt=0, le=1440)] = 60,
                       points: Annotated[int, Query(ge=10, le=2000)] = 360,
                       host: HostQuery = None) -> HostHistoryResponse:
    """One point per poll for up to 24 h (kept across restarts), averaged down to at most
    `points`: memory used %, swap used, load, the first GPU's utilisation, temperature
    and power (null when not reported), and the fullest watched disk's use %."""
    health: HostHealth = member(request, host).host_health
    return health.recent(minutes, points)


@router.post("/docker-prune", response_model=PruneResult,
             responses={409: {"description": "a prune is already running"},
                        503: {"description": "no Spark configured"}})
async def docker_prune(request: Request, host: HostQuery = None) -> PruneResult:
    """Remove dangling images and the build cache on Spark 2 (tagged images,
    containers and volumes stay); says how much was freed."""
    health: HostHealth = member(request, host).host_health
    try:
        return await health.prune_docker()
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None
