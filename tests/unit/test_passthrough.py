"""Pass-throughs: what goes to the speech services and what comes back, with faults
injected by respx (the real servers are used in tests/speech/test_pipeline.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from app.config import Settings
from helpers import authed
from speech_audio import wav_bytes

ASR, TTS = "http://asr.test:8000", "http://tts.test:9000"


@pytest.fixture
def client(tmp_path):
    settings = Settings(_env_file=None, parakeet_url=ASR, magpie_url=TTS, data_dir=tmp_path)
    with authed(settings) as c:
        yield c


@respx.mock
def test_speech_returns_magpies_audio(client):
    route = respx.post(f"{TTS}/v1/audio/speech").respond(
        content=b"RIFF-audio", headers={"content-type": "audio/wav"})
    response = client.post("/v1/audio/speech", json={"input": "Hello there.", "voice": "x"})
    assert response.status_code == 200
    assert response.content == b"RIFF-audio"
    assert response.headers["content-type"] == "audio/wav"
    assert route.calls.last.request.read() == b'{"input":"Hello there.","voice":"x",' \
                                              b'"response_format":"wav"}'


@respx.mock
@pytest.mark.parametrize(("fault", "status"), [
    (httpx.Response(500, text="boom"), 503), (httpx.ReadTimeout("slow"), 504),
    (httpx.ConnectError("refused"), 503), (httpx.Response(400, text="bad voice"), 400),
    (httpx.Response(401, text="who?"), 502),  # not the caller's request: our setup
], ids=["500", "timeout", "refused", "400", "401"])
def test_speech_faults(client, fault, status):
    route = respx.post(f"{TTS}/v1/audio/speech")
    if isinstance(fault, Exception):
        route.side_effect = fault
    else:
        route.return_value = fault
    response = client.post("/v1/audio/speech", json={"input": "Hi."})
    assert response.status_code == status, response.text
    assert TTS not in response.text  # magpie-tts is named, not its internal address


def test_speech_needs_text(client):
    assert client.post("/v1/audio/speech", json={"input": "  "}).status_code == 422
    assert client.post("/v1/audio/speech", json={}).status_code == 422


@respx.mock
def test_diarize_chunk_passes_the_answer_through(client):
    answer = {"duration": 1.0, "segments": [], "speakers_detected": 0, "models": {},
              "fingerprints": {}}
    route = respx.post(f"{ASR}/v1/audio/diarize-chunk").respond(json=answer)
    response = client.post("/api/audio/diarize-chunk",
                           files={"file": ("a.mp3", wav_bytes(1.0, rate=44100, tone=300))})
    assert response.json() == answer
    assert b"RIFF" in route.calls.last.request.read()  # normalised before it left


@respx.mock
def test_diarize_chunk_refuses_more_than_one_chunk(tmp_path):
    """It sends the whole input as one WAV: longer than a chunk would exceed what the
    speech server is sized for."""
    route = respx.post(f"{ASR}/v1/audio/diarize-chunk").respond(json={})
    with _chunked_client(tmp_path) as client:
        response = client.post("/api/audio/diarize-chunk",
                               files={"file": ("a.wav", wav_bytes(41.0, tone=300))})
    assert response.status_code == 413 and not route.called
    assert "at most 40 s" in response.json()["detail"]
    assert "transcribe-with-speakers" in response.json()["detail"]


@respx.mock
def test_transcriptions_500_is_503_and_bad_format_is_400(client):
    respx.post(f"{ASR}/v1/audio/transcriptions").respond(500, text="CUDA error")
    files = {"file": ("a.wav", wav_bytes(1.0, tone=300))}
    failed = client.post("/v1/audio/transcriptions", files=files)
    assert failed.status_code == 503 and failed.headers["retry-after"] == "60"
    bad = client.post("/v1/audio/transcriptions", files=files, data={"response_format": "mp3"})
    assert bad.status_code == 400 and "response_format" in bad.json()["detail"]


def _chunked_client(tmp_path):
    settings = Settings(_env_file=None, parakeet_url=ASR, data_dir=tmp_path,
                        chunk_threshold_s=40, chunk_s=40, chunk_overlap_s=5)
    return authed(settings)


VERBOSE = {"language": "english", "text": "Hi.", "duration": 40.0,
           "words": [{"word": "Hi.", "start": 5.0, "end": 5.4}],
           "segments": [{"id": 0, "start": 5.0, "end": 5.4, "text": "Hi."}]}


@respx.mock
def test_a_chunk_that_fails_once_is_retried(tmp_path):
    route = respx.post(f"{ASR}/v1/audio/transcriptions").mock(side_effect=[
        httpx.Response(500, text="CUDA error"), httpx.Response(200, json=VERBOSE),
        httpx.Response(200, json=VERBOSE)])
    with _chunked_client(tmp_path) as client:
        response = client.post("/v1/audio/transcriptions", data={"response_format": "json"},
                               files={"file": ("a.wav", wav_bytes(70.0, tone=200))})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "Hi. Hi."
    assert route.call_count == 3


@respx.mock
def test_a_chunk_that_fails_twice_is_named_in_the_error(tmp_path):
    respx.post(f"{ASR}/v1/audio/transcriptions").mock(return_value=httpx.Response(
        500, text="CUDA error"))
    with _chunked_client(tmp_path) as client:
        response = client.post("/v1/audio/transcriptions",
                               files={"file": ("a.wav", wav_bytes(70.0, tone=200))})
    assert response.status_code == 503, response.text
    assert "of 2" in response.json()["detail"] and "failed twice" in response.json()["detail"]


@respx.mock
def test_a_request_the_speech_server_refuses_is_the_callers_4xx_and_not_retried(tmp_path):
    route = respx.post(f"{ASR}/v1/audio/transcriptions").mock(return_value=httpx.Response(
        400, json={"detail": "language 'fr' is not supported by this engine"}))
    with _chunked_client(tmp_path) as client:
        response = client.post("/v1/audio/transcriptions", data={"language": "fr"},
                               files={"file": ("a.wav", wav_bytes(70.0, tone=200))})
    assert response.status_code == 400, response.text
    assert "language 'fr' is not supported" in response.json()["detail"]
    assert ASR not in response.text
    assert route.call_count <= 2  # each chunk at most once: a refusal is not retried


def test_a_failed_chunk_cancels_the_others_at_once(tmp_path):
    """The first refusal ends the request; a chunk still in flight is cancelled, not left
    running against the speech server after the answer went out."""
    started, cancelled = [], []

    async def answer(request):
        started.append(1)
        if len(started) == 1:
            for _ in range(200):  # refuse only once the other chunk is in flight
                if len(started) > 1:
                    break
                await asyncio.sleep(0.01)
            return httpx.Response(400, json={"detail": "language 'fr' is not supported"})
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise
        return httpx.Response(200, json={"text": "", "words": [], "segments": []})

    with respx.mock:
        respx.post(f"{ASR}/v1/audio/transcriptions").mock(side_effect=answer)
        with _chunked_client(tmp_path) as client:
            response = client.post("/v1/audio/transcriptions", data={"language": "fr"},
                                   files={"file": ("a.wav", wav_bytes(70.0, tone=200))})
            seen = (len(started), list(cancelled))  # before the client's loop shuts down
    assert response.status_code == 400
    assert seen == (2, [1])
