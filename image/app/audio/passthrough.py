"""OpenAI-compatible transcription through spark-control, long files chunked here.

Chunks are transcribed as verbose_json (words and segments); times are moved to the
recording's clock and each overlap is cut at its middle, so nothing is repeated.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import webvtt

from .exports import clock
from .merge import join_words
from .pipeline import chunk_audio, chunk_name, together
from .stitching import cuts, plan_chunks

if TYPE_CHECKING:
    from ..pool.dispatch import SpeechPool

FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


async def transcribe(pool: "SpeechPool", source: Path, work: Path, duration: float,
                     language: str | None, threshold_s: float, chunk_s: float,
                     overlap_s: float) -> tuple[dict[str, Any], list[str]]:
    """The joined verbose_json, and the host each part ran on."""
    spans = ([(0.0, duration)] if duration <= threshold_s
             else plan_chunks(duration, max_s=chunk_s, overlap_s=overlap_s))
    ran = await together(*(_part(pool, source, work, i, spans, language)
                           for i in range(len(spans))))
    parts = [part for part, _ in ran]
    words, segments = _join(parts, spans)
    return ({"task": "transcribe", "language": parts[0].get("language", "english"),
             "duration": round(duration, 3), "text": join_words(s["text"] for s in segments),
             "segments": segments, "words": words}, [host for _, host in ran])


async def _part(pool: "SpeechPool", source: Path, work: Path, i: int,
                spans: list[tuple[float, float]], language: str | None
                ) -> tuple[dict[str, Any], str]:
    if len(spans) == 1:  # source is already 16 kHz mono WAV (media.receive)
        whole = await pool.run_once_each(spans[0][1], "the recording",
                                         lambda c: c.verbose(source, language))
        return whole.value, whole.host
    async with chunk_audio(pool, source, work, i, spans[i]) as wav:
        ran = await pool.run(spans[i][1] - spans[i][0], chunk_name(i, spans),
                             lambda c: c.verbose(wav, language))
    return ran.value, ran.host


def _join(parts: list[dict[str, Any]],
          spans: list[tuple[float, float]]) -> tuple[list[dict], list[dict]]:
    words: list[dict] = []
    segments: list[dict] = []
    for part, (start, _), (lo, hi) in zip(parts, spans, cuts(spans)):
        words += _shifted(part.get("words", []), start, lo, hi)
        segments += _shifted(part.get("segments", []), start, lo, hi)
    for index, segment in enumerate(segments):
        segment["id"] = index
    return words, segments


def _shifted(items: list[dict], offset: float, lo: float, hi: float) -> list[dict]:
    out = []
    for item in items:
        start, end = item["start"] + offset, item["end"] + offset
        if lo <= start < hi:
            out.append({**item, "start": round(start, 3), "end": round(end, 3)})
    return out


def render(body: dict[str, Any], fmt: str, granularities: set[str]) -> Any:
    """The body in the requested response_format (a dict for the JSON ones)."""
    if fmt == "json":
        return {"text": body["text"]}
    if fmt == "text":
        return body["text"]
    if fmt == "verbose_json":
        wanted = granularities or {"segment"}
        return {k: v for k, v in body.items()
                if (k != "words" or "word" in wanted) and (k != "segments" or "segment" in wanted)}
    captions = [webvtt.Caption(clock(round(s["start"] * 1000)), clock(round(s["end"] * 1000)),
                               s["text"].strip())
                for s in body["segments"]]
    out = io.StringIO()
    webvtt.WebVTT(captions=captions).write(out, format=fmt)
    text = out.getvalue()
    return text if text.endswith("\n") else text + "\n"

