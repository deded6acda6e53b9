"""Stand-in for NVIDIA's magpie-tts container in the simulated Spark 2.

We do not own magpie-tts; this answers its two routes the control plane uses:
`/health` and `POST /v1/audio/speech` (a WAV whose length follows the text).
"""

from __future__ import annotations

import io
import math
import struct
import wave

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel

app = FastAPI(title="magpie-tts stand-in")
RATE = 22050


class SpeechRequest(BaseModel):
    input: str
    voice: str | None = None
    response_format: str = "wav"


@app.get("/health")
def health() -> dict[str, object]:
    return {"status": "ok", "models": {"tts": "magpie-tts-standin"}}


@app.post("/v1/audio/speech")
def speech(request: SpeechRequest) -> Response:
    if not request.input.strip():
        raise HTTPException(400, "input is empty")
    seconds = min(0.08 * len(request.input), 30.0)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / RATE)))
                      for i in range(int(seconds * RATE)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return Response(buffer.getvalue(), media_type="audio/wav")
