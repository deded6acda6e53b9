"""Pass-throughs to the speech services, with the same limits and fault handling as
the rest of `/api/audio`: OpenAI-compatible transcription (long files chunked here),
diarize-chunk, and text-to-speech on magpie-tts."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from ..audio.media import receive, workdir
from ..audio.passthrough import FORMATS, render, transcribe
from ..audio.uploads import form_schema
from ..errors import NotConfigured, RemoteTimeout, UpstreamHTTPError, UpstreamUnavailable
from .audio import HOSTS_HEADER, refuse_if_swapping, speech_pool, wedge_recovery

router = APIRouter(tags=["pass-through"])


TRANSCRIPTION_FORM = form_schema(
    model={"type": "string", "default": "parakeet"},
    language={"type": "string", "description": "e.g. en; the server's default when empty"},
    response_format={"type": "string", "enum": list(FORMATS), "default": "json"},
    **{"timestamp_granularities[]": {"type": "array", "description": "word and/or segment",
                                     "items": {"type": "string", "enum": ["word", "segment"]}}})


@router.post("/v1/audio/transcriptions", response_model=None,
             openapi_extra=TRANSCRIPTION_FORM)
async def transcriptions(request: Request) -> Response:
    """OpenAI-compatible; recordings over CHUNK_THRESHOLD_S are chunked and joined."""
    settings, pool = request.app.state.settings, speech_pool(request)
    async with workdir(settings.data_dir) as work:
        upload, duration = await receive(request, work, settings.max_upload_mb)
        refuse_if_swapping(request, duration)
        response_format = upload.value("response_format") or "json"
        if response_format not in FORMATS:
            raise HTTPException(400, f"response_format must be one of {', '.join(FORMATS)}")
        granularities = set(upload.fields.get("timestamp_granularities[]", []))
        async with wedge_recovery(request):
            body, hosts = await transcribe(pool, upload.path, work, duration,
                                    upload.value("language") or None,
                                    settings.chunk_threshold_s, settings.chunk_s,
                                    settings.chunk_overlap_s)
    out = render(body, response_format, granularities)
    headers = {HOSTS_HEADER: ",".join(hosts)}
    return (JSONResponse(out, headers=headers) if isinstance(out, dict)
            else PlainTextResponse(out, headers=headers))


@router.post("/api/audio/diarize-chunk", openapi_extra=form_schema())
async def diarize_chunk(request: Request) -> Any:
    """The speech server's diarize-chunk (turns + voice fingerprints), as it answers."""
    settings, pool = request.app.state.settings, speech_pool(request)
    async with workdir(settings.data_dir) as work:
        upload, duration = await receive(request, work, settings.max_upload_mb)
        if duration > settings.longest_chunk_s:
            raise HTTPException(413, f"diarize-chunk takes one chunk of at most "
                                     f"{settings.longest_chunk_s:g} s (this is {duration:.0f} s);"
                                     " send longer recordings to transcribe-with-speakers")
        async with wedge_recovery(request):  # upload.path is 16 kHz mono WAV already
            ran = await pool.run_once_each(duration, "the chunk",
                                           lambda c: c.diarize_chunk_raw(upload.path))
    return JSONResponse(ran.value, headers={HOSTS_HEADER: ran.host})


class SpeechRequest(BaseModel):
    input: str
    voice: str | None = None
    response_format: str = "wav"
    model: str | None = None


@router.post("/v1/audio/speech", response_class=Response)
async def speech(request: Request, body: SpeechRequest) -> Response:
    """Text to speech on magpie-tts; the audio comes back as magpie answers it."""
    url = request.app.state.settings.magpie_url
    if not url:
        raise NotConfigured("no TTS service is configured (MAGPIE_URL or SPARK2_HOST)")
    if not body.input.strip():
        raise HTTPException(422, "input is empty: give the text to speak")
    async with wedge_recovery(request, kind="tts"):
        answer = await _tts(request.app.state.http, f"{url.rstrip('/')}/v1/audio/speech",
                            body, request.app.state.settings.speech_timeout_s)
    return Response(answer.content, media_type=answer.headers.get("content-type",
                                                                  "audio/wav"))


async def _tts(http: httpx.AsyncClient, url: str, body: SpeechRequest,
               timeout: float) -> httpx.Response:
    try:
        answer = await http.post(url, json=body.model_dump(exclude_none=True), timeout=timeout)
    except httpx.TimeoutException:
        raise RemoteTimeout(f"magpie-tts did not answer within {timeout:g} s") from None
    except httpx.TransportError as exc:
        raise UpstreamUnavailable(f"cannot reach magpie-tts: {exc}") from None
    if answer.status_code >= 400:
        raise UpstreamHTTPError("magpie-tts", url, answer.status_code, answer.text)
    return answer
