"""`/api/hosts`: the speech hosts of the pool, their load, draining, and a reapply of
the overlay on every host, one at a time. The per-host pages are the usual routes with
`?host=NAME` (/api/services, /api/host, /api/speech-models, /api/speech-server)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse

from ..pool.dispatch import SpeechPool
from ..pool.members import Member
from ..pool.rolling import RollingReapply
from ..pool.views import MemberView
from ..progress import Job, JobView, event_stream
from ..registry import Busy

router = APIRouter(prefix="/api/hosts", tags=["hosts"])
HostQuery = Annotated[str | None, Query(
    description="a speech host's name (GET /api/hosts); the first host when left out")]


class ServiceBrief(BaseModel):
    name: str
    state: str


class HostSummary(BaseModel):
    pool: MemberView
    mode: Literal["remote", "local", "external"]
    services: list[ServiceBrief]
    host_reachable: bool | None  # its host health poll (None: not polled, or none)
    host_warnings: list[str]


class HostsResponse(BaseModel):
    hosts: list[HostSummary]
    embedding_model: str | None  # the model every host taking work must use
    outstanding_s: float  # seconds of audio in flight over the whole pool
    taking_work: int


class DrainChange(BaseModel):
    drained: bool


def member(request: Request, host: str | None) -> Member:
    """The named host (404 when unknown), or the first one."""
    pool: SpeechPool = request.app.state.pool
    if host is None:
        return pool.first
    try:
        return pool.get(host)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("", response_model=HostsResponse)
async def hosts(request: Request) -> HostsResponse:
    """Every host: state in the pool (active, drained, down, refused) with the reason,
    load (outstanding seconds of audio, units in flight), services and host health.
    Cached readings only: an unreachable host never slows this page."""
    pool: SpeechPool = request.app.state.pool
    view = pool.view()
    summaries = [_summary(pool.members[v.name], v) for v in view.members]
    return HostsResponse(hosts=summaries, embedding_model=view.embedding_model,
                         outstanding_s=view.outstanding_s, taking_work=view.taking_work)


@router.put("/{name}/drain", response_model=MemberView,
            responses={404: {"description": "unknown host"},
                       409: {"description": "it is the only host taking work"}})
async def drain(name: str, change: DrainChange, request: Request) -> MemberView:
    """Drained: no new work goes to the host (work in flight finishes); undrained: it
    takes work again. Kept until changed (or spark-control restarts)."""
    pool: SpeechPool = request.app.state.pool
    member(request, name)
    try:
        await pool.set_drained(name, change.drained)
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None
    return next(v for v in pool.view().members if v.name == name)


@router.post("/reapply", status_code=202, response_model=JobView,
             responses={409: {"description": "a job or action is running on a host"}})
async def reapply_all(request: Request) -> JobView:
    """Reapply the overlay on every managed host, one at a time (each drained first, so
    the others keep serving); the first failure stops the roll."""
    try:
        return _rolling(request).start().view
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/jobs/{job_id}", response_model=JobView)
async def get_job(job_id: str, request: Request) -> JobView:
    return _job(request, job_id).view


@router.get("/jobs/{job_id}/stream")
async def stream_job(job_id: str, request: Request) -> EventSourceResponse:
    """Server-sent events: a `step` per change (each host's step names what its own
    job is doing), then `done` or `failed`."""
    return event_stream(_job(request, job_id))


def _rolling(request: Request) -> RollingReapply:
    return request.app.state.rolling


def _job(request: Request, job_id: str) -> Job:
    job = _rolling(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no reapply-all job {job_id!r}")
    return job


def _summary(m: Member, view: MemberView) -> HostSummary:
    health = m.host_health
    poller = health.poller
    reachable = (None if health.source == "none" or poller.updated_at is None
                 else poller.error is None)
    return HostSummary(
        pool=view, mode=m.registry.mode,  # type: ignore[arg-type]
        services=[ServiceBrief(name=s.name, state=s.state) for s in m.registry.statuses()],
        host_reachable=reachable,
        host_warnings=[w.message for w in health.warnings.active.values()])
