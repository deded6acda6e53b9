"""Canned speech-server answers for respx, for tests that inject faults upstream."""

from __future__ import annotations

import asyncio

import httpx
import respx

URL = "http://asr.test:8000"
DIAR = {"duration": 2.0, "speakers_detected": 1,
        "models": {"asr": "a", "diarizer": "d", "embedding": "e"},
        "segments": [{"start_s": 0.0, "end_s": 2.0, "speaker": "Speaker_0", "confidence": 1}],
        "fingerprints": {"Speaker_0": [0.6, 0.8]}}
WORDS = {"language": "english", "words": [{"word": "Hi", "start": 0.1, "end": 0.3},
                                          {"word": "there.", "start": 0.4, "end": 0.8}]}


def answer_speech(transcription_delay_s: float = 0.0) -> None:
    """Route the speech server's transcription and diarization (inside respx.mock);
    a delay keeps a job running for as long as a test needs."""
    async def transcribe(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(transcription_delay_s)
        return httpx.Response(200, json=WORDS)

    respx.post(f"{URL}/v1/audio/transcriptions").mock(side_effect=transcribe)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
