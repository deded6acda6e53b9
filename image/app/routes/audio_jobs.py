"""`/api/audio/jobs`: transcribe-with-speakers for long work, followed live."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse

from ..audio.exports import MEDIA_TYPES, file_id, render
from ..audio.jobs import AudioJob, AudioJobs
from ..audio.media import receive
from ..audio.pipeline import SpeakersResult
from ..audio.uploads import form_schema
from .audio import MATCH_HELP, refuse_if_swapping, result_for, speech_pool

router = APIRouter(prefix="/api/audio/jobs", tags=["audio jobs"])


class JobList(BaseModel):
    jobs: list[AudioJob]


def _jobs(request: Request) -> AudioJobs:
    return request.app.state.audio_jobs


@router.post("", status_code=202, response_model=AudioJob,
             responses={413: {"description": "upload over MAX_UPLOAD_MB"},
                        415: {"description": "not audio"},
                        429: {"description": "JOBS_QUEUE_MAX jobs are already waiting"}},
             openapi_extra=form_schema())
async def submit(request: Request,
                 match_speakers: Annotated[bool, Query(description=MATCH_HELP)] = True
                 ) -> AudioJob:
    """Accept a recording (the same form as transcribe-with-speakers) and work on it in
    the background; follow it at `/events`, fetch it at `/result`."""
    settings = request.app.state.settings
    speech_pool(request)  # 503 now, not a failed job later, when none is configured
    jobs = _jobs(request)
    job_id = jobs.new_id()
    spool = settings.data_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"job-{job_id}-", dir=spool))
    try:
        upload, duration = await receive(request, work, settings.max_upload_mb)
        refuse_if_swapping(request, duration)
        return await jobs.submit(job_id, upload.filename or "upload", work, upload.path,
                                 duration, match_speakers)
    except BaseException:  # refused (413, 415, 429...) or cut: the job never owned it
        shutil.rmtree(work, ignore_errors=True)
        raise


@router.get("", response_model=JobList)
async def list_jobs(request: Request,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JobList:
    """The most recent jobs, newest first."""
    return JobList(jobs=await _jobs(request).recent(limit))


@router.get("/{job_id}", response_model=AudioJob, responses={404: {}})
async def get_job(job_id: str, request: Request) -> AudioJob:
    return await _jobs(request).get(job_id)


@router.get("/{job_id}/events", responses={404: {}})
async def job_events(job_id: str, request: Request) -> EventSourceResponse:
    """Server-sent events, each carrying the job: its state now, then `progress` on
    every stage or chunk, ending with `done`, `failed` or `cancelled`."""
    jobs = _jobs(request)
    await jobs.get(job_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[dict[str, str]]:
        async for job in jobs.follow(job_id):
            name = job.status if job.status in ("done", "failed", "cancelled") else "progress"
            yield {"event": name, "data": job.model_dump_json()}

    return EventSourceResponse(events())


@router.get("/{job_id}/result", response_model=SpeakersResult,
            responses={404: {}, 409: {"description": "the job is not done"}})
async def job_result(
    job_id: str, request: Request,
    format: Annotated[Literal["json", "srt", "vtt", "rttm", "txt"], Query()] = "json",
    match_speakers: Annotated[bool | None, Query(
        description="name known speakers (default: as the job was submitted)")] = None,
) -> SpeakersResult | Response:
    """The result, with speakers named from the voice library as it is now: a rename or
    an enrollment shows here at once."""
    jobs = _jobs(request)
    done = await jobs.result(job_id)
    job = await jobs.get(job_id)
    wanted = job.match_speakers if match_speakers is None else match_speakers
    result = await result_for(request, done, wanted)
    if format == "json":
        return result
    return PlainTextResponse(render(result, format, file_id(job.filename)),
                             media_type=MEDIA_TYPES[format])


@router.delete("/{job_id}", status_code=204, responses={404: {}})
async def delete_job(job_id: str, request: Request) -> Response:
    """Cancel the job if it is still running; forget it and its result."""
    await _jobs(request).delete(job_id)
    return Response(status_code=204)

