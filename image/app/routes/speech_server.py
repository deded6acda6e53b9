"""`/api/speech-server`: what speech server the Spark runs; install, upgrade and roll
it back, with live progress and the build log."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse

from ..progress import Job, JobView, event_stream
from ..registry import Busy
from ..speech_server.deploy import Kind
from ..speech_server.manager import SpeechServer, SpeechServerStatus
from .pool import HostQuery, member

router = APIRouter(prefix="/api/speech-server", tags=["speech server"])
BUSY = {409: {"description": "a job or action is running, or the request does not apply "
                             "(install over an existing container, rollback with no previous)"}}


class BuildOptions(BaseModel):
    no_cache: bool = False  # rebuild every layer (a newer base or package index)


class JobLog(BaseModel):
    job: str
    total: int  # lines logged so far
    lines: list[str]  # the last `tail` of them


def _manager(request: Request, host: str | None) -> SpeechServer:
    return member(request, host).speech_server


def _job(request: Request, job_id: str, host: str | None) -> Job:
    job = _manager(request, host).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no speech-server job {job_id!r}")
    return job


@router.get("", response_model=SpeechServerStatus)
async def status(request: Request, host: HostQuery = None) -> SpeechServerStatus:
    """installed / outdated / missing / unmanaged, the running and previous images."""
    return await _manager(request, host).status()


@router.post("/install", status_code=202, response_model=JobView, responses=BUSY)
async def install(request: Request, options: BuildOptions | None = None,
                  host: HostQuery = None) -> JobView:
    """Build the speech server on the Spark, run it with the memory cap, wait until its
    models are loaded and a probe transcription answers."""
    return await _start(request, "install", options, host)


@router.post("/upgrade", status_code=202, response_model=JobView, responses=BUSY)
async def upgrade(request: Request, options: BuildOptions | None = None,
                  host: HostQuery = None) -> JobView:
    """Build this spark-control's context, start it beside the running server, switch
    when it answers; on any failure the old server keeps serving."""
    return await _start(request, "upgrade", options, host)


@router.post("/rollback", status_code=202, response_model=JobView, responses=BUSY)
async def rollback(request: Request, host: HostQuery = None) -> JobView:
    """Switch back to the previous image, the same way as an upgrade."""
    return await _start(request, "rollback", None, host)


@router.get("/jobs/{job_id}", response_model=JobView)
async def get_job(job_id: str, request: Request,
                  host: HostQuery = None) -> JobView:
    return _job(request, job_id, host).view


@router.get("/jobs/{job_id}/log", response_model=JobLog)
async def job_log(job_id: str, request: Request, tail: int = 200,
                  host: HostQuery = None) -> JobLog:
    job = _job(request, job_id, host)
    return JobLog(job=job_id, total=job.view.log_lines, lines=job.log_tail(max(1, min(tail, 5000))))


@router.get("/jobs/{job_id}/stream")
async def stream_job(job_id: str, request: Request,
                     host: HostQuery = None) -> EventSourceResponse:
    """Server-sent events: `step` (the job), `log` (a build line), then `done` or `failed`."""
    return event_stream(_job(request, job_id, host))


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobView,
             responses={409: {"description": "the job has already ended"}})
async def cancel(job_id: str, request: Request,
                 host: HostQuery = None) -> JobView:
    """Stop the job: the build is ended on the Spark and what the job made is removed."""
    _job(request, job_id, host)
    try:
        return (await _manager(request, host).cancel(job_id)).view
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None


async def _start(request: Request, kind: Kind, options: BuildOptions | None,
                 host: str | None) -> JobView:
    try:
        job = await _manager(request, host).start(kind, no_cache=bool(options and options.no_cache))
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None
    return job.view
