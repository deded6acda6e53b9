"""transcribe-with-speakers: transcription and diarization in parallel, chunked for
long recordings, stitched to one speaker identity, merged into speaker blocks.

The response shape is a contract with recap-relay: {duration, language,
speakers_detected, segments: [{start_ms, end_ms, speaker, text}], models}, plus the
optional `speakers` that naming (speakers/naming.py) adds. Each detected speaker's
voice fingerprint comes back beside the result (`Voices`), never inside it: prints are
biometric data, kept only as long as the job and never sent to clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from ..config import Settings
from ..errors import ModelMismatch
from ..speakers.thresholds import scale_for
from .media import to_wav
from .merge import SpeakerTurn, TimedWord, merge, talk_seconds
from .speech_client import SpeechClient

if TYPE_CHECKING:
    from ..pool.dispatch import SpeechPool
from .stitching import ChunkResult, plan_chunks, stitch


T = TypeVar("T")
Progress = Callable[[str, int, int], Awaitable[None]]
"""Called as progress(stage, done, total): stage "normalizing", "transcribing" (done
of total chunks) or "merging"."""


async def _quiet(stage: str, done: int, total: int) -> None:
    return None


class SpeakerSegment(BaseModel):
    start_ms: int
    end_ms: int
    speaker: str
    text: str


class ModelNames(BaseModel):
    transcription: str
    diarization: str


class Suggestion(BaseModel):
    """A near miss: the enrolled person this speaker resembles most, under the match
    threshold (or a likely split of a person another speaker was named after)."""

    name: str
    score: float
    same_as: str | None = None  # the label named `name`: likely one person split in two


class SpeakerName(BaseModel):
    """A detected speaker and the known speaker it was matched to (if any)."""

    label: str  # the label diarization gave (Speaker_N); segments use `name` instead when set
    name: str | None = None  # the enrolled person's name, when the voice matched one
    score: float | None = None  # the cosine of the match (see GET /api/speakers for thresholds)
    suggested: Suggestion | None = None  # never set together with `name`


class SpeakersResult(BaseModel):
    duration: float
    language: str
    speakers_detected: int
    segments: list[SpeakerSegment]
    models: ModelNames
    chunks: int = 1
    speakers: list[SpeakerName] | None = None  # null when naming was turned off


class VoicePrint(BaseModel):
    vector: list[float]  # unit length
    seconds: float  # speech behind it


class Voices(BaseModel):
    """The detected speakers' fingerprints, by the result's labels; `model` is the
    embedding model that made them (prints of different models never compare)."""

    model: str = ""
    prints: dict[str, VoicePrint] = {}


class Transcribed(BaseModel):
    result: SpeakersResult
    voices: Voices


Runner = Callable[[Path, Path, float, Progress, "Placed"], Awaitable["Transcribed"]]
Placed = Callable[[int, str, list[str]], Awaitable[None]]
"""Called as placed(chunk index, host it ran on, hosts where it failed first)."""


async def _nowhere(index: int, host: str, failed_on: list[str]) -> None:
    return None


def runner(pool: SpeechPool, settings: Settings) -> Runner:
    """transcribe_with_speakers bound to the pool and the chunking settings."""
    async def run(source: Path, work: Path, duration: float, progress: Progress = _quiet,
                  placed: Placed = _nowhere) -> Transcribed:
        return await transcribe_with_speakers(
            pool, source, work, duration, threshold_s=settings.chunk_threshold_s,
            chunk_s=settings.chunk_s, overlap_s=settings.chunk_overlap_s, progress=progress,
            placed=placed)
    return run


async def transcribe_with_speakers(pool: SpeechPool, source: Path, work: Path,
                                   duration: float, *, threshold_s: float = 600.0,
                                   chunk_s: float = 600.0,
                                   overlap_s: float = 25.0,
                                   progress: Progress = _quiet,
                                   placed: Placed = _nowhere) -> Transcribed:
    if duration <= threshold_s:
        heard = await _whole(pool, source, duration, progress, placed)
        chunks = 1
    else:
        spans = plan_chunks(duration, max_s=chunk_s, overlap_s=overlap_s)
        heard = await _chunked(pool, source, work, spans, progress, placed)
        chunks = len(spans)
    await progress("merging", chunks, chunks)
    return Transcribed(result=_result(duration, heard, chunks), voices=_voices(heard))


@dataclass
class _Heard:
    words: list[TimedWord]
    turns: list[SpeakerTurn]
    language: str
    prints: dict[str, list[float]]
    models: dict[str, str]


async def _whole(pool: SpeechPool, source: Path, duration: float, progress: Progress,
                 placed: Placed) -> _Heard:
    # source is already 16 kHz mono WAV: media.receive decoded the upload on arrival
    await progress("normalizing", 0, 1)
    await progress("transcribing", 0, 1)
    ran = await pool.run_once_each(duration, "the recording",
                                   lambda c: _chunk_once(c, source, 0.0, duration))
    await placed(0, ran.host, ran.failed_on)
    part, language, models = ran.value
    return _Heard(part.words, part.turns, language, part.fingerprints, models)


async def _chunked(pool: SpeechPool, source: Path, work: Path,
                   spans: list[tuple[float, float]], progress: Progress,
                   placed: Placed) -> _Heard:
    done = 0

    async def one(index: int) -> _Part:
        nonlocal done
        result = await _chunk(pool, source, work, index, spans, placed)
        done += 1
        await progress("transcribing", done, len(spans))
        return result

    await progress("transcribing", 0, len(spans))
    results = await together(*(one(i) for i in range(len(spans))))
    models = _one_embedding_model(results)
    scale = scale_for(models.get("embedding", ""))
    figures = {} if scale is None else {"same_voice": scale.same_voice,
                                        "different_voice": scale.different_voice,
                                        "split_voice": scale.split_voice}
    stitched = stitch([r for r, _, _ in results], **figures)
    return _Heard(stitched.words, stitched.turns, results[0][1], stitched.prints, models)


_Part = tuple[ChunkResult, str, dict[str, str]]  # (result, language, the models used)


def _one_embedding_model(results: list[_Part]) -> dict[str, str]:
    """The models of the chunks; refused when their prints came from different
    embedding models (a member changed model mid-job): they would not compare."""
    used = {models.get("embedding", "") for _, _, models in results}
    if len(used) > 1:
        raise ModelMismatch(f"the chunks were diarized with different embedding models "
                            f"({', '.join(sorted(used))}): their voice prints do not compare, "
                            "so speakers cannot be followed across chunks; submit the file "
                            "again once every speech host runs the same model")
    return results[0][2]


async def _chunk(pool: SpeechPool, source: Path, work: Path, index: int,
                 spans: list[tuple[float, float]], placed: Placed) -> _Part:
    start, end = spans[index]
    async with chunk_audio(pool, source, work, index, spans[index]) as wav:
        ran = await pool.run(end - start, chunk_name(index, spans),
                             lambda c: _chunk_once(c, wav, start, end))
    await placed(index, ran.host, ran.failed_on)
    return ran.value


def chunk_name(index: int, spans: list[tuple[float, float]]) -> str:
    start, end = spans[index]
    return f"chunk {index + 1} of {len(spans)} ({start:.0f}-{end:.0f} s)"


async def together(*steps: Awaitable[T]) -> list[T]:
    """Run steps at once; on the first failure cancel the others and raise it.
    (asyncio.gather would leave them running, still sending to the speech server,
    after the request has failed and its work folder is gone.)"""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def chunk_audio(pool: SpeechPool, source: Path, work: Path, index: int,
                      span: tuple[float, float]) -> AsyncIterator[Path]:
    """The span as a 16 kHz WAV, removed afterwards; chunks are cut only as fast as
    the pool takes them (its chunk gate), so disk use stays bounded."""
    start, end = span
    wav = work / f"chunk-{index:04d}.wav"
    async with pool.gate_chunks:
        try:
            await to_wav(source, wav, start, end - start)
            yield wav
        finally:
            wav.unlink(missing_ok=True)


async def _chunk_once(client: SpeechClient, wav: Path, start: float, end: float) -> _Part:
    (words, language), (turns, prints) = await together(
        client.transcribe(wav), client.diarize(wav, chunk=True))
    return ChunkResult(start, end, turns, words, prints), language, dict(client.models)


def _result(duration: float, heard: _Heard, chunks: int) -> SpeakersResult:
    segments = [SpeakerSegment(start_ms=round(b.start * 1000), end_ms=round(b.end * 1000),
                               speaker=b.speaker, text=b.text)
                for b in merge(heard.words, heard.turns)]
    models = ModelNames(transcription=heard.models.get("asr", "unknown"),
                        diarization=heard.models.get("diarizer", "unknown"))
    return SpeakersResult(duration=round(duration, 3), language=heard.language,
                          speakers_detected=len({t.speaker for t in heard.turns}),
                          segments=segments, models=models, chunks=chunks)


def _voices(heard: _Heard) -> Voices:
    """Each speaker's print with the seconds of speech it stands for."""
    seconds = talk_seconds(heard.turns)
    prints = {label: VoicePrint(vector=vector, seconds=round(seconds[label], 2))
              for label, vector in heard.prints.items() if label in seconds}
    return Voices(model=heard.models.get("embedding", ""), prints=prints)
