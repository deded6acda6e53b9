"""A speech server whose cost per audio second is fixed, for the pipeline benchmarks.

It speaks the speech server's contract (transcriptions as verbose_json, diarize,
diarize-chunk with fingerprints) and answers after COST_MS_PER_S milliseconds per
second of audio, at most PARALLEL requests at a time (a GPU's capacity), so timings
measure spark-control and not a model. Words come every 0.5 s; three speakers take
15 s turns; each has a fixed voice fingerprint.

    COST_MS_PER_S=10 PARALLEL=2 uvicorn fixed_cost_server:app --app-dir bench --port 8000
"""

from __future__ import annotations

import asyncio
import os
import wave
from typing import Annotated, Any

from fastapi import FastAPI, File, UploadFile

COST_S = float(os.environ.get("COST_MS_PER_S", "10")) / 1000
GPU = asyncio.Semaphore(int(os.environ.get("PARALLEL", "2")))
SPEAKERS = 3
TURN_S = 15.0

app = FastAPI(title="fixed-cost speech server")


def seconds(upload: UploadFile) -> float:
    with wave.open(upload.file, "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def work(upload: UploadFile) -> float:
    duration = seconds(upload)
    async with GPU:
        await asyncio.sleep(duration * COST_S)
    return duration


def turns(duration: float) -> list[dict[str, Any]]:
    out, start = [], 0.0
    while start < duration:
        end = min(duration, start + TURN_S)
        out.append({"start_s": start, "end_s": end, "confidence": 0.9,
                    "speaker": f"Speaker_{int(start // TURN_S) % SPEAKERS}"})
        start = end
    return out


@app.get("/health")
async def health() -> dict[str, Any]:
    return {"status": "ok", "asr_loaded": True, "diarizer_loaded": True, "engine": "fixed"}


@app.post("/v1/audio/transcriptions")
async def transcriptions(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    duration = await work(file)
    words = [{"word": f"w{i}.", "start": i * 0.5, "end": i * 0.5 + 0.3}
             for i in range(int(duration / 0.5))]
    return {"language": "english", "duration": duration, "text": "", "words": words,
            "segments": []}


@app.post("/v1/audio/diarize")
async def diarize(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    duration = await work(file)
    return {"duration": duration, "segments": turns(duration), "speakers_detected": SPEAKERS,
            "models": {"asr": "fixed-cost", "diarizer": "fixed-cost"}}


@app.post("/v1/audio/diarize-chunk")
async def diarize_chunk(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    body = await diarize(file)
    body["fingerprints"] = {f"Speaker_{k}": [1.0 if i == k else 0.0 for i in range(8)]
                            for k in range(SPEAKERS)}
    return body
