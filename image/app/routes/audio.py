"""`/api/audio`: the speech pipeline for recap-relay and the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..audio.exports import MEDIA_TYPES, file_id, render
from ..audio.media import receive, workdir
from ..audio.pipeline import SpeakersResult, Transcribed, runner
from ..audio.uploads import form_schema
from ..errors import NotConfigured, UpstreamHTTPError
from ..pool.dispatch import SpeechPool
from ..speakers.naming import named

router = APIRouter(prefix="/api/audio", tags=["audio"])


@router.post("/transcribe-with-speakers", response_model=SpeakersResult,
             responses={413: {"description": "upload over MAX_UPLOAD_MB"},
                        415: {"description": "not audio"},
                        503: {"description": "speech server failing or unreachable"},
                        504: {"description": "speech server timed out"}},
             openapi_extra=form_schema())
async def transcribe_speakers(
    request: Request,
    format: Annotated[Literal["json", "srt", "vtt", "rttm", "txt"], Query()] = "json",
    match_speakers: Annotated[bool, Query(description=MATCH_HELP)] = True,
) -> SpeakersResult | Response:
    """Speaker-labelled transcript blocks; recordings over CHUNK_THRESHOLD_S are cut in
    overlapping chunks and stitched to one speaker identity. Speakers whose voice
    matches an enrolled one (/api/speakers) are named. `format` picks JSON (the
    contract), SRT or WebVTT subtitles with speaker names, RTTM or plain text."""
    done, filename, hosts = await _transcribe(request)
    result = await result_for(request, done, match_speakers)
    headers = {HOSTS_HEADER: ",".join(hosts)}
    if format == "json":
        return JSONResponse(result.model_dump(mode="json"), headers=headers)
    text = render(result, format, file_id(filename))
    return PlainTextResponse(text, media_type=MEDIA_TYPES[format], headers=headers)


HOSTS_HEADER = "X-Speech-Hosts"  # the speech host of each chunk, in order


MATCH_HELP = ("name speakers whose voice matches an enrolled one (false: keep the "
              "Speaker_N labels; `speakers` is null)")


async def result_for(request: Request, done: Transcribed, match_speakers: bool
                     ) -> SpeakersResult:
    """The result as served: with its speakers named, unless that was turned off."""
    if not match_speakers:
        return done.result
    return await named(done.result, done.voices, request.app.state.voices,
                       request.app.state.settings.speaker_match_threshold)


async def _transcribe(request: Request) -> tuple[Transcribed, str, list[str]]:
    settings = request.app.state.settings
    run = runner(speech_pool(request), settings)
    hosts: dict[int, str] = {}

    async def placed(index: int, host: str, failed_on: list[str]) -> None:
        hosts[index] = host

    async with workdir(settings.data_dir) as work:
        upload, duration = await receive(request, work, settings.max_upload_mb)
        refuse_if_swapping(request, duration)
        async with wedge_recovery(request):
            done = await run(upload.path, work, duration, placed=placed)
    return done, upload.filename, [hosts[i] for i in sorted(hosts)]


def speech_pool(request: Request) -> SpeechPool:
    pool: SpeechPool = request.app.state.pool
    if not pool.serving:
        raise NotConfigured("no speech server is configured (PARAKEET_URL, SPARK2_HOST "
                            "or HOSTS)")
    return pool


def refuse_if_swapping(request: Request, duration: float) -> None:
    """With REFUSE_LONG_JOBS_WHILE_SWAPPING, a long recording waits while the speech
    hosts swap more and more (the host warning; with a pool, every host taking work):
    503 + Retry-After rather than make it worse."""
    settings = request.app.state.settings
    if not settings.refuse_long_jobs_while_swapping or duration <= settings.chunk_threshold_s:
        return
    pool: SpeechPool = request.app.state.pool
    swaps = {m.name: m.host_health.warnings.active.get("swap")
             for m in pool.members.values() if pool.usable(m)}
    said = {name: w.message for name, w in swaps.items() if w is not None}
    if not swaps or len(said) < len(swaps):  # some host taking work does not swap
        return
    where = (f"Spark 2 is swapping ({next(iter(said.values()))})" if len(said) == 1
             else "every speech host is swapping (" + "; ".join(
                 f"{name}: {message}" for name, message in said.items()) + ")")
    raise HTTPException(503, f"{where}; recordings over {settings.chunk_threshold_s:g} s are "
                             "refused until it stops (REFUSE_LONG_JOBS_WHILE_SWAPPING)",
                        headers={"Retry-After": "120"})


@asynccontextmanager
async def wedge_recovery(request: Request, kind: str = "asr") -> AsyncIterator[None]:
    """A 5xx from a speech service: start its deep check, answer 503 + Retry-After."""
    try:
        yield
    except UpstreamHTTPError as exc:
        if not request.app.state.pool.kick_wedged(exc, kind):
            raise
        raise HTTPException(503, f"the speech server failed ({exc.message}); a deep "
                                 "check was started; retry in a minute",
                            headers={"Retry-After": "60"}) from None
