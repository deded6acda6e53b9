"""The parakeet-asr speech server: one HTTP contract, two engines behind it.

Runs inside the `parakeet-asr` container on Spark 2 (`uvicorn main:app` in
/opt/parakeet/app) with the NeMo engine, and anywhere else with the CPU engine
(`ENGINE=cpu uvicorn main:app --app-dir image/parakeet_patches`).

Errors: bad input -> 4xx with a message; models not loaded yet -> 503 with
Retry-After; an engine failure -> 500 whose JSON names the stage that failed
(`{"detail": ..., "stage": "transcribe"}`), so a caller can tell a wedged GPU
from a bad file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from audio_io import MAX_UPLOAD_BYTES, BadAudio, decode, spooled
from body_limit import BodyLimit
from engine_base import SAMPLE_RATE, Diarization, Engine, EngineError
from engines import make_engine
from formats import FORMATS, subtitles, verbose_json
from work import WorkLog, WorkReport, describe

log = logging.getLogger("parakeet")
T = TypeVar("T")
GRANULARITIES = {"word", "segment"}


class DiarSegment(BaseModel):
    start_s: float
    end_s: float
    speaker: str
    confidence: float


class DiarizeResponse(BaseModel):
    duration: float
    segments: list[DiarSegment]
    speakers_detected: int
    models: dict[str, str]


class DiarizeChunkResponse(DiarizeResponse):
    fingerprints: dict[str, list[float]]


class Health(BaseModel):
    status: str  # loading, ok, error, hung
    engine: str
    asr_loaded: bool
    diarizer_loaded: bool
    models: dict[str, str]
    error: str | None = None
    load_seconds: float | None = None
    work: WorkReport  # what the models are doing now: busy is not wedged


class LoadState:
    def __init__(self) -> None:
        self.error: str | None = None
        self.seconds: float | None = None


def create_app(engine: Engine | None = None) -> FastAPI:
    engine = engine or make_engine()
    loading = LoadState()
    work = WorkLog()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load(engine, loading))
        yield
        task.cancel()

    app = FastAPI(title="parakeet-asr", lifespan=lifespan,
                  description="Speech-to-text with diarization and voice fingerprints.")
    app.state.engine, app.state.loading, app.state.work = engine, loading, work
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StageFailed, _stage_failed)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, max_bytes=MAX_UPLOAD_BYTES)
    _routes(app, engine, loading, work)
    return app


async def _load(engine: Engine, state: LoadState) -> None:
    started = time.perf_counter()
    try:
        await asyncio.to_thread(engine.load)
    except EngineError as exc:  # a known cause, said in full: no traceback to read
        state.error = str(exc)
        log.error("loading the %s engine failed: %s", engine.name, exc)
    except Exception as exc:  # reported by /health; requests get 503 with the reason
        state.error = f"{type(exc).__name__}: {exc}"
        log.exception("loading the %s engine failed", engine.name)
    state.seconds = round(time.perf_counter() - started, 2)
    log.info("%s engine: loaded in %.1f s (error: %s)", engine.name, state.seconds, state.error)


def _routes(app: FastAPI, engine: Engine, loading: LoadState, work: WorkLog) -> None:
    @app.get("/health", response_model=Health)
    async def health() -> Health:
        ready = engine.asr_loaded and engine.diarizer_loaded
        now = work.report()
        status = "error" if loading.error else "hung" if now.hung else "ok" if ready else "loading"
        error = loading.error or (describe(now) if now.hung else None)
        return Health(status=status, engine=engine.name, asr_loaded=engine.asr_loaded,
                      diarizer_loaded=engine.diarizer_loaded, models=_models(engine),
                      error=error, load_seconds=loading.seconds, work=now)

    @app.post("/v1/audio/transcriptions", response_model=None)
    async def transcriptions(
        file: Annotated[UploadFile, File(description="the audio file")],
        model: Annotated[str, Form()] = "parakeet",
        language: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        granularities: Annotated[list[str], Form(alias="timestamp_granularities[]")] = [],
        granularities_plain: Annotated[list[str], Form(alias="timestamp_granularities")] = [],
    ) -> Response:
        wanted = set(granularities) | set(granularities_plain)
        _check_format(response_format, wanted)
        _ready(engine, loading, asr=True)
        audio = await _read_audio(work, file)
        transcript = await _engine_call(work, engine.transcribe, audio, language,
                                        stage="transcribe")
        duration = audio.size / SAMPLE_RATE
        if response_format == "text":
            return PlainTextResponse(transcript.text)
        if response_format in ("srt", "vtt"):
            return PlainTextResponse(subtitles(transcript, response_format),
                                     media_type="text/vtt" if response_format == "vtt"
                                     else "application/x-subrip")
        if response_format == "verbose_json":
            return JSONResponse(verbose_json(transcript, duration, wanted))
        return JSONResponse({"text": transcript.text})

    @app.post("/v1/audio/diarize", response_model=DiarizeResponse)
    async def diarize(file: Annotated[UploadFile, File()],
                      max_speakers: Annotated[int | None, Form(ge=1, le=16)] = None
                      ) -> DiarizeResponse:
        audio, result = await _diarize(engine, loading, work, file, max_speakers)
        return DiarizeResponse(**_diarization_body(engine, audio, result))

    @app.post("/v1/audio/diarize-chunk", response_model=DiarizeChunkResponse)
    async def diarize_chunk(file: Annotated[UploadFile, File()],
                            max_speakers: Annotated[int | None, Form(ge=1, le=16)] = None
                            ) -> DiarizeChunkResponse:
        audio, result = await _diarize(engine, loading, work, file, max_speakers)
        prints = await _engine_call(work, engine.fingerprints, audio, result,
                                    stage="fingerprint")
        return DiarizeChunkResponse(**_diarization_body(engine, audio, result),
                                    fingerprints=prints)


async def _diarize(engine: Engine, loading: LoadState, work: WorkLog, file: UploadFile,
                   max_speakers: int | None) -> tuple[np.ndarray, Diarization]:
    _ready(engine, loading, asr=False)
    audio = await _read_audio(work, file)
    result = await _engine_call(work, engine.diarize, audio, max_speakers, stage="diarize")
    return audio, result


def _diarization_body(engine: Engine, audio: np.ndarray, result: Diarization) -> dict[str, Any]:
    segments = [DiarSegment(start_s=round(t.start, 3), end_s=round(t.end, 3), speaker=t.speaker,
                            confidence=round(t.confidence, 3)) for t in result.turns]
    return {"duration": round(audio.size / SAMPLE_RATE, 3), "segments": segments,
            "speakers_detected": len(result.speakers), "models": _models(engine)}


def _models(engine: Engine) -> dict[str, str]:
    return {"asr": engine.asr_model, "diarizer": engine.diarizer_model,
            "embedding": engine.embedding_model}


def _check_format(response_format: str, granularities: set[str]) -> None:
    if response_format not in FORMATS:
        raise HTTPException(400, f"response_format must be one of {', '.join(FORMATS)}; "
                                 f"got {response_format!r}")
    unknown = granularities - GRANULARITIES
    if unknown:
        raise HTTPException(400, f"timestamp_granularities[] accepts word and segment; "
                                 f"got {', '.join(sorted(unknown))}")


def _ready(engine: Engine, loading: LoadState, *, asr: bool) -> None:
    if loading.error:
        raise HTTPException(503, f"the {engine.name} engine failed to load: {loading.error}")
    if not (engine.asr_loaded if asr else engine.diarizer_loaded):
        raise HTTPException(503, "models are still loading; retry shortly",
                            headers={"Retry-After": "10"})


async def _read_audio(work: WorkLog, file: UploadFile) -> np.ndarray:
    def read() -> np.ndarray:
        with spooled(file.file) as path:
            return decode(path)

    try:
        # Its bound grows with the file: as if it were 16 kHz 16-bit PCM (compressed
        # audio is longer, and ffmpeg decodes it hundreds of times faster than real time).
        with work.call("decode", (file.size or 0) / (SAMPLE_RATE * 2)):
            return await run_in_threadpool(read)
    except BadAudio as exc:
        raise HTTPException(exc.status, str(exc)) from None


async def _engine_call(work: WorkLog, fn: Callable[..., T], audio: np.ndarray, *args: Any,
                       stage: str) -> T:
    try:
        with work.call(stage, audio.size / SAMPLE_RATE):
            return await run_in_threadpool(fn, audio, *args)
    except ValueError as exc:  # the engine refused the request's parameters
        raise HTTPException(400, str(exc)) from None
    except EngineError as exc:
        raise _engine_failure(exc.stage, exc.message) from None
    except Exception as exc:  # an engine bug is still an engine failure at this stage
        log.exception("%s failed", stage)
        raise _engine_failure(stage, f"{type(exc).__name__}: {exc}") from None


class StageFailed(Exception):
    """An engine failed while serving a request: 500 naming the stage."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


def _engine_failure(stage: str, message: str) -> StageFailed:
    return StageFailed(stage, f"{stage} failed: {message}")


async def _stage_failed(_: Request, exc: StageFailed) -> JSONResponse:
    return JSONResponse(status_code=500, content={"detail": exc.message, "stage": exc.stage})


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"] if p not in ("body", "query"))
        if error["type"] == "missing":
            problems.append(f"missing form field '{field}'"
                            + (" (the audio, as a multipart file upload)" if field == "file"
                               else ""))
        else:
            problems.append(f"{field}: {error['msg']}")
    return JSONResponse(status_code=422, content={"detail": "; ".join(problems)})


app = create_app()
