"""Small audio files for tests, made on the spot (nothing large is committed)."""

from __future__ import annotations

import io
import math
import struct
import wave


def wav_bytes(seconds: float, rate: int = 16000, channels: int = 1, tone: float = 0.0) -> bytes:
    """A WAV of silence (or a sine tone), any rate and channel count."""
    frames = int(seconds * rate)
    samples = (int(8000 * math.sin(2 * math.pi * tone * i / rate)) if tone else 0
               for i in range(frames))
    data = b"".join(struct.pack("<h", s) * channels for s in samples)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data)
    return buffer.getvalue()
