"""The speaker blocks as files: SRT and WebVTT (through webvtt-py), RTTM and text.

Speakers are named in every cue: WebVTT with its voice span (`<v Speaker_0>`), SRT,
which has no such markup, as a "Speaker_0: " prefix. A known speaker's name goes in
the label's place; RTTM, whose fields are split on spaces, gets it with underscores.
"""

from __future__ import annotations

import io
import re
from pathlib import PurePath

import webvtt

from .pipeline import SpeakersResult

MEDIA_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt",
               "rttm": "text/plain", "txt": "text/plain"}


def file_id(filename: str | None) -> str:
    """An RTTM file id from an upload's name: its stem, with nothing but [A-Za-z0-9._-]."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(filename or "").stem).strip("._")
    return stem or "recording"


def render(result: SpeakersResult, fmt: str, file_id: str = "recording") -> str:
    if fmt in ("srt", "vtt"):
        return _subtitles(result, fmt)
    if fmt == "rttm":
        return "".join(f"SPEAKER {file_id} 1 {s.start_ms / 1000:.3f} "
                       f"{(s.end_ms - s.start_ms) / 1000:.3f} <NA> <NA> "
                       f"{'_'.join(s.speaker.split())} <NA> <NA>\n"
                       for s in result.segments)
    return "".join(f"[{clock(s.start_ms, '.')[:8]}] {s.speaker}: {s.text}\n"
                   for s in result.segments)


def _subtitles(result: SpeakersResult, fmt: str) -> str:
    captions = [webvtt.Caption(clock(s.start_ms, "."), clock(s.end_ms, "."),
                               f"<v {s.speaker}>{s.text}" if fmt == "vtt"
                               else f"{s.speaker}: {s.text}")
                for s in result.segments]
    out = io.StringIO()
    webvtt.WebVTT(captions=captions).write(out, format=fmt, keep_formatting=True)
    text = out.getvalue()
    return text if text.endswith("\n") else text + "\n"  # its SRT lacks the last one


def clock(ms: int, sep: str = ".") -> str:
    """Milliseconds as HH:MM:SS.mmm (or with `sep` before the milliseconds)."""
    hours, rest = divmod(max(ms, 0), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{millis:03d}"
