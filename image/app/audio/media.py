"""Uploads on disk and ffmpeg/ffprobe as subprocesses (streaming, constant memory).

An upload is streamed to a spool file under DATA_DIR (never held whole in memory,
never copied through /tmp: uploads.py) and every file made from it lives in the same
per-request directory, removed on every path out.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import HTTPException, Request

from .uploads import MB, Upload, read_upload



@asynccontextmanager
async def workdir(data_dir: Path) -> AsyncIterator[Path]:
    spool = data_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="req-", dir=spool))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clear_spool(data_dir: Path) -> None:
    """Remove what a killed process left in the spool (run before any request)."""
    shutil.rmtree(data_dir / "spool", ignore_errors=True)


@dataclass
class Probe:
    format: str  # ffprobe's format_name, e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2"
    bit_rate: int  # of the audio stream, bits/s (0 when unknown)


async def receive(request: Request, work: Path, max_mb: int) -> tuple[Upload, float]:
    """Stream the request's upload into work and decode it once to 16 kHz mono WAV:
    (the upload, now at that WAV; its duration in seconds, counted from the samples)."""
    upload = await read_upload(request, work / "upload", max_mb * MB)
    wav = work / "normalized.wav"
    duration = await normalize(upload.path, wav, await probe(upload.path))
    upload.path.unlink()
    return replace(upload, path=wav), duration


async def probe(path: Path) -> Probe:
    """What the file is; 415 when ffprobe finds no audio in it."""
    code, out, err = await _run(["ffprobe", "-v", "error", "-show_entries",
                                 "format=format_name:stream=codec_type,bit_rate", "-of", "json",
                                 str(path)])
    if code != 0:
        raise HTTPException(415, f"not a readable audio file: {_reason(err)}")
    info = json.loads(out or b"{}")
    audio = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not audio:
        raise HTTPException(415, "the file has no audio stream")
    rate = str(audio[0].get("bit_rate", "0"))
    return Probe(str(info.get("format", {}).get("format_name", "")),
                 int(rate) if rate.isdigit() else 0)


async def normalize(source: Path, target: Path, found: Probe) -> float:
    """Decode all of source to 16 kHz mono WAV; seconds of audio it really holds.

    Headers lie (a FLAC that claims 10 h over 5 s of frames; a WAV whose data size
    says 0.05 s over 5.5 s of samples): the duration is the decoded sample count, never
    the header's, and a WAV holding far more bytes than its data size says is read
    again to its end (`-ignore_length`)."""
    seconds = await _decode(source, target, [])
    if found.format.split(",")[0] == "wav" and found.bit_rate:
        unread = source.stat().st_size - seconds * found.bit_rate / 8
        if unread > max(64 * 1024, found.bit_rate / 8):  # over 1 s: not a trailing tag
            seconds = await _decode(source, target, ["-ignore_length", "1"])
    if seconds <= 0:
        raise HTTPException(422, "the audio is 0 s long")
    return seconds


async def _decode(source: Path, target: Path, options: list[str]) -> float:
    code, _, err = await _run(["ffmpeg", "-nostdin", "-v", "error", *options, "-i", str(source),
                               "-map", "0:a:0", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
                               "-y", str(target)])
    if code != 0:
        raise HTTPException(415, f"could not decode the audio: {_reason(err)}")
    with wave.open(str(target)) as decoded:
        return decoded.getnframes() / decoded.getframerate()


async def to_wav(source: Path, target: Path, start: float = 0.0,
                 length: float | None = None) -> None:
    """16 kHz mono 16-bit WAV of [start, start+length) without decoding the rest."""
    span = ["-ss", f"{start:.3f}"] + (["-t", f"{length:.3f}"] if length else [])
    code, _, err = await _run(["ffmpeg", "-nostdin", "-v", "error", *span, "-i", str(source),
                               "-map", "0:a:0", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
                               "-y", str(target)])
    if code != 0:
        raise HTTPException(415, f"could not decode the audio: {_reason(err)}")


async def _run(argv: list[str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE,
                                                stdin=asyncio.subprocess.DEVNULL)
    try:
        out, err = await proc.communicate()
    except BaseException:  # cancelled (a job deleted or shut down): no orphan ffmpeg
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, out, err


def _reason(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return (lines[-1].split(": ", 1)[-1] if lines else "unknown error")[:300]
