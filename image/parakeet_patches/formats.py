"""Transcription response formats of the OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import Any

from engine_base import Transcript

FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


def verbose_json(t: Transcript, duration: float, granularities: set[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"task": "transcribe", "language": _language_name(t.language),
                            "duration": round(duration, 3), "text": t.text}
    if "segment" in granularities or not granularities:
        body["segments"] = [{"id": i, "start": round(s.start, 3), "end": round(s.end, 3),
                             "text": s.text} for i, s in enumerate(t.segments)]
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
                         for w in t.words]
    return body


def subtitles(t: Transcript, kind: str) -> str:
    """SRT or WebVTT with one cue per segment."""
    cues = []
    for index, seg in enumerate(t.segments, start=1):
        span = f"{_stamp(seg.start, kind)} --> {_stamp(seg.end, kind)}"
        cues.append(f"{index}\n{span}\n{seg.text.strip()}\n" if kind == "srt"
                    else f"{span}\n{seg.text.strip()}\n")
    body = "\n".join(cues)
    return f"WEBVTT\n\n{body}" if kind == "vtt" else body


def _stamp(seconds: float, kind: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    sep = "," if kind == "srt" else "."
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def _language_name(code: str) -> str:
    # OpenAI's verbose_json names the language in full
    return {"en": "english"}.get(code, code)
