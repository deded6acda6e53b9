"""`/api/speakers`: the voice library. Enroll a person from a sample of their voice or
from a speaker of a finished job; list, rename, delete (prints and all)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from ..audio.jobs import AudioJobs
from ..audio.media import receive, workdir
from ..audio.pipeline import VoicePrint
from ..audio.uploads import form_schema
from ..speakers import enroll
from ..speakers.library import NameTaken, Speaker, TooManySamples, VoiceLibrary
from ..speakers.naming import PersonName, clean_name
from ..speakers.thresholds import MIN_ENROLL_S, MIN_MATCH_S, scale_for
from .audio import speech_pool, wedge_recovery

router = APIRouter(prefix="/api/speakers", tags=["speakers"])
M = TypeVar("M", bound=BaseModel)
MAX_JSON = 16 * 1024


class SpeakerList(BaseModel):
    speakers: list[Speaker]
    model: str | None  # the speech server's embedding model (None until it has answered)
    threshold: float | None  # that model's match threshold (None: no names are given)
    suggest_from: float | None = None  # scores from here to the threshold are suggestions
    measured: bool | None = None  # the threshold was calibrated on real people here
    min_match_s: float = MIN_MATCH_S
    min_enroll_s: float = MIN_ENROLL_S


class SampleFromJob(BaseModel):
    job_id: str
    label: str  # the speaker's label in that job (Speaker_N), not a name shown for it


class EnrollFromJob(SampleFromJob):
    name: PersonName


class Rename(BaseModel):
    name: PersonName


def _enroll_body(*, named: bool) -> dict[str, Any]:
    """Both ways to enroll in /docs: a sample (multipart) or a job's speaker (JSON)."""
    fields = {"name": {"type": "string", "description": "the person's name"}} if named else {}
    extra = form_schema(**fields)
    model = EnrollFromJob if named else SampleFromJob
    extra["requestBody"]["content"]["application/json"] = {"schema": model.model_json_schema()}
    return extra


def _library(request: Request) -> VoiceLibrary:
    return request.app.state.voices


@router.get("", response_model=SpeakerList)
async def list_speakers(request: Request) -> SpeakerList:
    """Enrolled people with their samples (model, seconds, source; never the prints)."""
    model = _embedding_model(request)
    scale = scale_for(model, request.app.state.settings.speaker_match_threshold) \
        if model else None
    return SpeakerList(speakers=await _library(request).all(), model=model,
                       threshold=scale and scale.match, suggest_from=scale and scale.suggest,
                       measured=scale and scale.measured)


@router.post("", status_code=201, response_model=Speaker, openapi_extra=_enroll_body(named=True),
             responses={409: {"description": "the name is taken"},
                        422: {"description": "no usable voice in the sample or job"}})
async def enroll_speaker(request: Request) -> Speaker:
    """Enroll a person: multipart `name` + `file` (a clip of their voice alone, at least
    MIN_ENROLL_S of speech), or JSON `{name, job_id, label}` for a speaker of a finished
    job ("this is Alice")."""
    library = _library(request)
    if _is_json(request):
        body = await _json(request, EnrollFromJob)
        await _name_free(request, body.name)
        name, (model, voice) = body.name, await _job_voice(request, body)
    else:
        name, (model, voice) = await _sample_voice(request, named=True)
    try:
        speaker_id = await library.create(name)
    except NameTaken as exc:
        raise HTTPException(409, str(exc)) from None
    await library.add_sample(speaker_id, model, voice.vector, voice.seconds,
                             "job" if _is_json(request) else "upload")
    return await _speaker(library, speaker_id)


@router.post("/{speaker_id}/samples", status_code=201, response_model=Speaker,
             openapi_extra=_enroll_body(named=False),
             responses={404: {}, 422: {"description": "no usable voice in the sample or job"}})
async def add_sample(speaker_id: str, request: Request) -> Speaker:
    """Another sample of an enrolled person (multipart `file`, or JSON `{job_id, label}`);
    matching uses the mean of their samples."""
    library = _library(request)
    await _speaker(library, speaker_id)
    if _is_json(request):
        model, voice = await _job_voice(request, await _json(request, SampleFromJob))
    else:
        _, (model, voice) = await _sample_voice(request, named=False)
    try:
        await library.add_sample(speaker_id, model, voice.vector, voice.seconds,
                                 "job" if _is_json(request) else "upload")
    except TooManySamples as exc:
        raise HTTPException(409, str(exc)) from None
    return await _speaker(library, speaker_id)


@router.get("/{speaker_id}", response_model=Speaker, responses={404: {}})
async def get_speaker(speaker_id: str, request: Request) -> Speaker:
    return await _speaker(_library(request), speaker_id)


@router.patch("/{speaker_id}", response_model=Speaker,
              responses={404: {}, 409: {"description": "the name is taken"}})
async def rename_speaker(speaker_id: str, body: Rename, request: Request) -> Speaker:
    """Rename; every stored result shows the new name at once."""
    library = _library(request)
    try:
        found = await library.rename(speaker_id, body.name)
    except NameTaken as exc:
        raise HTTPException(409, str(exc)) from None
    if not found:
        raise _not_found(speaker_id)
    return await _speaker(library, speaker_id)


@router.delete("/{speaker_id}", status_code=204, responses={404: {}})
async def delete_speaker(speaker_id: str, request: Request) -> Response:
    """Delete the person and every voiceprint of theirs (overwritten in the file)."""
    if not await _library(request).delete(speaker_id):
        raise _not_found(speaker_id)
    return Response(status_code=204)


@router.delete("/{speaker_id}/samples/{sample_id}", status_code=204, responses={404: {}})
async def delete_sample(speaker_id: str, sample_id: int, request: Request) -> Response:
    if not await _library(request).delete_sample(speaker_id, sample_id):
        raise HTTPException(404, f"speaker {speaker_id!r} has no sample {sample_id}")
    return Response(status_code=204)


# -- helpers ---------------------------------------------------------------------------


def _embedding_model(request: Request) -> str | None:
    """The pool's embedding model: the first member's that is known (its cached
    /health, else its last answer), so it shows before the first transcription."""
    reference = request.app.state.pool.reference()
    return reference[1] if reference else None


async def _speaker(library: VoiceLibrary, speaker_id: str) -> Speaker:
    found = await library.get(speaker_id)
    if found is None:
        raise _not_found(speaker_id)
    return found


def _not_found(speaker_id: str) -> HTTPException:
    return HTTPException(404, f"no enrolled speaker {speaker_id!r}")


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json"


async def _json(request: Request, model: type[M]) -> M:
    body = await request.body()
    if len(body) > MAX_JSON:
        raise HTTPException(413, f"the JSON body is over {MAX_JSON // 1024} KB")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors(include_url=False)]) from None


async def _job_voice(request: Request, body: SampleFromJob) -> tuple[str, VoicePrint]:
    jobs: AudioJobs = request.app.state.audio_jobs
    done = await jobs.result(body.job_id)
    if not done.voices.model:
        raise HTTPException(422, f"job {body.job_id} kept no voiceprints (it ran before "
                                 "spark-control kept them); transcribe the file again")
    return enroll.from_job(done.voices, body.job_id, body.label)


async def _sample_voice(request: Request, *, named: bool
                        ) -> tuple[str, tuple[str, VoicePrint]]:
    """(the form's name, (model, print)) from a multipart sample."""
    settings = request.app.state.settings
    pool = speech_pool(request)
    async with workdir(settings.data_dir) as work:
        upload, duration = await receive(request, work, settings.max_upload_mb)
        name = _form_name(upload.value("name")) if named else ""
        if named:
            await _name_free(request, name)  # before the speech server does any work
        if duration > settings.longest_chunk_s:
            raise HTTPException(413, f"the sample is {duration:.0f} s long, over the "
                                     f"{settings.longest_chunk_s:.0f} s of one speech-server "
                                     "request; send a clip of one person (a minute is plenty)")
        async with wedge_recovery(request):
            ran = await pool.run_once_each(duration, "the sample",
                                           lambda c: enroll.from_sample(c, upload.path))
            return name, ran.value


async def _name_free(request: Request, name: str) -> None:
    taken = await _library(request).find(name)
    if taken is not None:
        raise HTTPException(409, str(NameTaken(taken.name, taken.id)))


def _form_name(value: str | None) -> str:
    if value is None:
        raise HTTPException(422, "missing form field 'name' (the person's name)")
    try:
        return clean_name(value)
    except ValueError as exc:
        raise HTTPException(422, f"form field 'name': {exc}") from None
