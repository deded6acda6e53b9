"""The parakeet-asr speech server (runs inside the container as `uvicorn main:app`).

Health only for now: the transcription and diarization contract and its engines
arrive with the speech-server work (issue 3). It answers /health truthfully:
nothing is loaded.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

ENGINE = os.environ.get("ENGINE", "none")

app = FastAPI(title="parakeet-asr")


@app.get("/health")
def health() -> dict[str, object]:
    return {"status": "ok", "engine": ENGINE, "asr_loaded": False,
            "diarizer_loaded": False, "models": {}}
