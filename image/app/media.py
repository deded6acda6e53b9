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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import HTTPException, Request

from .uploads import Upload, read_upload

CHUNK = 1024 * 1024


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


async def receive(request: Request, work: Path, max_mb: int) -> tuple[Upload, float]:
    """Stream the request's upload into work and check it is audio: (upload, duration in s)."""
    upload = await read_upload(request, work / "upload", max_mb * CHUNK)
    return upload, await probe_duration(upload.path)


async def probe_duration(path: Path) -> float:
    """Seconds of audio; 415 when ffprobe finds no audio, 422 when it lasts 0 s."""
    code, out, err = await _run(["ffprobe", "-v", "error", "-show_entries",
                                 "format=duration:stream=codec_type", "-of", "json", str(path)])
    if code != 0:
        raise HTTPException(415, f"not a readable audio file: {_reason(err)}")
    info = json.loads(out or b"{}")
    if not any(s.get("codec_type") == "audio" for s in info.get("streams", [])):
        raise HTTPException(415, "the file has no audio stream")
    duration = float(info.get("format", {}).get("duration") or 0)
    if duration <= 0:
        raise HTTPException(422, "the audio is 0 s long")
    return duration


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
