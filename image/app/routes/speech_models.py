"""`/api/speech-models`: overlay drift, and reapply/restart jobs with live progress."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sse_starlette.sse import EventSourceResponse

from ..progress import Job, JobView, event_stream
from ..registry import Busy
from ..speech_models import SpeechModels, SpeechModelsStatus
from .pool import HostQuery, member

router = APIRouter(prefix="/api/speech-models", tags=["speech models"])


def _manager(request: Request, host: str | None = None) -> SpeechModels:
    return member(request, host).speech_models


def _job(request: Request, job_id: str, host: str | None) -> Job:
    job = _manager(request, host).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job


@router.get("", response_model=SpeechModelsStatus)
async def status(request: Request, host: HostQuery = None) -> SpeechModelsStatus:
    """Per-file local vs container sha256, loaded models, container state."""
    return await _manager(request, host).status()


@router.post("/reapply", status_code=202, response_model=JobView,
             responses={409: {"description": "another job or action is running"}})
async def reapply(request: Request, host: HostQuery = None) -> JobView:
    """Copy the overlay in, verify, restart, wait for health; rolls back on failure.
    (Every host, one at a time: POST /api/hosts/reapply.)"""
    return _start(request, "reapply", host)


@router.post("/restart", status_code=202, response_model=JobView,
             responses={409: {"description": "another job or action is running"}})
async def restart(request: Request, host: HostQuery = None) -> JobView:
    """Restart parakeet-asr and wait for its models to load."""
    return _start(request, "restart", host)


@router.get("/jobs/{job_id}", response_model=JobView)
async def get_job(job_id: str, request: Request, host: HostQuery = None) -> JobView:
    return _job(request, job_id, host).view


@router.get("/jobs/{job_id}/stream")
async def stream_job(job_id: str, request: Request,
                     host: HostQuery = None) -> EventSourceResponse:
    """Server-sent events: every step change so far, then live ones; ends with
    `done` or `failed`."""
    return event_stream(_job(request, job_id, host))


def _start(request: Request, kind: str, host: str | None) -> JobView:
    try:
        return _manager(request, host).start(kind).view
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None
