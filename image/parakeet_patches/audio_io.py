"""Uploads to 16 kHz mono float32 arrays, with errors a caller can act on.

ffprobe checks what the file is (and whether it is cut short), ffmpeg decodes it
as a subprocess; both read a temporary file that is always removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine_base import SAMPLE_RATE

CHUNK = 1024 * 1024
MAX_UPLOAD_BYTES = int(float(os.environ.get("MAX_UPLOAD_MB", "2048")) * 1024 * 1024)


class BadAudio(ValueError):
    """The upload is not usable audio; the message says why (mapped to 400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def spooled(upload: BinaryIO, limit: int | None = None) -> Iterator[Path]:
    """Copy an upload to a temporary file, refusing more than `limit` bytes."""
    limit = limit or MAX_UPLOAD_BYTES
    with tempfile.TemporaryDirectory(prefix="asr-upload-") as tmp:
        path = Path(tmp) / "upload"
        size = 0
        with path.open("wb") as out:
            while block := upload.read(CHUNK):
                size += len(block)
                if size > limit:
                    raise BadAudio(f"upload is larger than {limit // CHUNK} MB "
                                   "(MAX_UPLOAD_MB)", status=413)
                out.write(block)
        if size == 0:
            raise BadAudio("the uploaded file is empty (0 bytes)")
        yield path


def decode(path: Path) -> np.ndarray:
    """Decode any ffmpeg-readable audio to 16 kHz mono float32."""
    probe(path)
    declared = declared_wav_seconds(path)
    samples = _ffmpeg_pcm(path)
    if samples.size == 0:
        raise BadAudio("the audio contains no samples (0 s long)")
    decoded = samples.size / SAMPLE_RATE
    if declared is not None and declared > 1.0 and decoded < 0.9 * declared:
        raise BadAudio(f"the audio is truncated: its header says {declared:.1f} s but only "
                       f"{decoded:.1f} s could be decoded; upload the complete file")
    return samples


def declared_wav_seconds(path: Path) -> float | None:
    """The length a WAV header promises (ffprobe derives it from the file size instead)."""
    with path.open("rb") as f:
        head = f.read(65536)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    fmt, data = head.find(b"fmt "), head.find(b"data")
    if fmt < 0 or data < 0:
        return None
    byte_rate = int.from_bytes(head[fmt + 16:fmt + 20], "little")
    size = int.from_bytes(head[data + 4:data + 8], "little")
    if byte_rate == 0 or size in (0, 0xFFFFFFFF):  # streaming writers leave it unset
        return None
    return size / byte_rate


def probe(path: Path) -> None:
    """Raises BadAudio when ffprobe finds no audio stream in the file."""
    result = _run([_tool("ffprobe"), "-v", "error", "-show_entries",
                   "format=format_name:stream=codec_type", "-of", "json", str(path)])
    if result.returncode != 0:
        raise BadAudio(f"not a readable audio file: {_reason(result.stderr)}")
    info = json.loads(result.stdout or b"{}")
    if not any(s.get("codec_type") == "audio" for s in info.get("streams", [])):
        kind = info.get("format", {}).get("format_name", "unknown")
        raise BadAudio(f"the file has no audio stream (ffprobe sees format '{kind}')")


def _ffmpeg_pcm(path: Path) -> np.ndarray:
    result = _run([_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
                   "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-acodec", "pcm_s16le",
                   "-"])
    if result.returncode != 0:
        raise BadAudio(f"could not decode the audio: {_reason(result.stderr)}")
    pcm = np.frombuffer(result.stdout, dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0).copy()


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, check=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed in this container; install ffmpeg")
    return found


def _reason(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    # ffmpeg prefixes messages with the input path, which means nothing to the caller
    return (lines[-1].split(": ", 1)[-1] if lines else "unknown error")[:300]
