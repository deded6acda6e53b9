"""`/api/speech-models`: overlay drift, and reapply/restart jobs with live progress."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sse_starlette.sse import EventSourceResponse

from ..progress import Job, JobView, event_stream
from ..registry import Busy
from ..speech_models import SpeechModels, SpeechModelsStatus

router = APIRouter(prefix="/api/speech-models", tags=["speech models"])


def _manager(request: Request) -> SpeechModels:
    return request.app.state.speech_models


def _job(request: Request, job_id: str) -> Job:
    job = _manager(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job


@router.get("", response_model=SpeechModelsStatus)
async def status(request: Request) -> SpeechModelsStatus:
    """Per-file local vs container sha256, loaded models, container state."""
    return await _manager(request).status()


@router.post("/reapply", status_code=202, response_model=JobView,
             responses={409: {"description": "another job or action is running"}})
async def reapply(request: Request) -> JobView:
    """Copy the overlay in, verify, restart, wait for health; rolls back on failure."""
    return _start(request, "reapply")


@router.post("/restart", status_code=202, response_model=JobView,
             responses={409: {"description": "another job or action is running"}})
async def restart(request: Request) -> JobView:
    """Restart parakeet-asr and wait for its models to load."""
    return _start(request, "restart")


@router.get("/jobs/{job_id}", response_model=JobView)
async def get_job(job_id: str, request: Request) -> JobView:
    return _job(request, job_id).view


@router.get("/jobs/{job_id}/stream")
async def stream_job(job_id: str, request: Request) -> EventSourceResponse:
    """Server-sent events: every step change so far, then live ones; ends with
    `done` or `failed`."""
    return event_stream(_job(request, job_id))


def _start(request: Request, kind: str) -> JobView:
    try:
        return _manager(request).start(kind).view
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None
