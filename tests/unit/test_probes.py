from __future__ import annotations

import asyncio
import io
import json
import wave

import httpx
import pytest
import respx

from app.config import ServiceSpec
from app.registry.probes import deep_check, fetch_health, models_from_health

ASR = ServiceSpec(name="parakeet-asr", container="parakeet-asr", url="http://asr:8000",
                  kind="asr")
TTS = ServiceSpec(name="magpie-tts", container="magpie-tts", url="http://tts:9000", kind="tts")


def check(spec: ServiceSpec, timeout: float = 1.0):
    async def go():
        async with httpx.AsyncClient() as client:
            return await deep_check(client, spec, timeout)
    return asyncio.run(go())


IDLE = {"status": "ok", "work": {"calls": 0}}
BUSY = {"status": "ok", "work": {"calls": 2, "stage": "transcribe", "audio_s": 600.0,
                                 "waiting_s": 95.0, "limit_s": 1320.0, "hung": False}}
HUNG = {"status": "hung", "work": {"calls": 1, "stage": "diarize", "audio_s": 1.0,
                                   "waiting_s": 400.0, "limit_s": 122.0, "hung": True}}


@pytest.fixture(autouse=True)
def _asr_health():
    """The ASR server's /health (asked before every ASR deep check): idle unless a test
    routes something else."""
    with respx.mock(assert_all_called=False) as mock:
        mock.get("http://asr:8000/health", name="health").respond(json=IDLE)
        yield mock


@respx.mock
def test_asr_deep_check_posts_one_second_of_silence():
    route = respx.post("http://asr:8000/v1/audio/transcriptions").respond(json={"text": ""})
    result = check(ASR)
    assert result.verdict == "ok"
    body = route.calls.last.request.content
    wav = body[body.index(b"RIFF"):body.rindex(b"\r\n--")]
    with wave.open(io.BytesIO(wav)) as audio:
        assert (audio.getnchannels(), audio.getframerate(), audio.getnframes()) == (1, 16000,
                                                                                    16000)
    assert b'name="file"; filename="deep-check.wav"' in body


@respx.mock
def test_tts_deep_check_sends_a_short_text():
    route = respx.post("http://tts:9000/v1/audio/speech").respond(content=b"RIFF....")
    assert check(TTS).verdict == "ok"
    assert json.loads(route.calls.last.request.content)["input"] == "Deep check."


@respx.mock
@pytest.mark.parametrize(("response", "verdict", "words"), [
    (httpx.Response(500, text="CUDA error: an illegal memory access"), "failed", "CUDA error"),
    (httpx.Response(503, text="loading"), "failed", "HTTP 503"),
    (httpx.ConnectError("refused"), "failed", "cannot reach"),
    (httpx.ReadTimeout("slow"), "failed", "no answer within 1 s"),
    (httpx.Response(404, text="Not Found"), "rejected", "HTTP 404"),
    (httpx.Response(422, text="bad form"), "rejected", "bad form"),
])
def test_deep_check_verdicts(response, verdict, words):
    route = respx.post("http://asr:8000/v1/audio/transcriptions")
    if isinstance(response, Exception):
        route.side_effect = response
    else:
        route.return_value = response
    result = check(ASR)
    assert result.verdict == verdict
    assert words in result.detail


def test_health_reads_models_and_failure_reasons(_asr_health):
    _asr_health.routes["health"].respond(json={
        "status": "ok", "models": {"asr": "nvidia/parakeet-tdt-0.6b-v3",
                                   "diarizer": "nvidia/diar_sortformer_4spk-v1"}})
    _asr_health.get("http://tts:9000/health").respond(500, text="boom")

    async def go():
        async with httpx.AsyncClient() as client:
            return (await fetch_health(client, ASR.url, 1), await fetch_health(client, TTS.url, 1))

    asr, tts = asyncio.run(go())
    assert asr.ok and asr.models == ["nvidia/diar_sortformer_4spk-v1",
                                     "nvidia/parakeet-tdt-0.6b-v3"]
    assert not tts.ok and tts.detail == "HTTP 500: boom"


def test_models_from_various_health_shapes():
    assert models_from_health({"asr_model": "a", "diar_model": "b", "x": 1}) == ["a", "b"]
    assert models_from_health({"models": ["m"]}) == ["m"]
    assert models_from_health(None) == []


def test_busy_server_is_not_probed_and_not_failed(_asr_health):
    _asr_health.routes["health"].respond(json=BUSY)
    probe = _asr_health.post("http://asr:8000/v1/audio/transcriptions")
    result = check(ASR)
    assert result.verdict == "busy"
    assert "2 model call(s) in progress" in result.detail and "deferred" in result.detail
    assert not probe.called


def test_hung_model_call_fails_even_though_health_answers(_asr_health):
    _asr_health.routes["health"].respond(json=HUNG)
    result = check(ASR)
    assert result.verdict == "failed"
    assert "no progress for 400 s (limit 122 s): hung" in result.detail


def test_silent_health_fails_the_check(_asr_health):
    _asr_health.routes["health"].side_effect = httpx.ReadTimeout("stopped")
    result = check(ASR)
    assert result.verdict == "failed" and "no answer from" in result.detail


@pytest.mark.parametrize(("after", "verdict", "words"), [
    (BUSY, "busy", "queued behind work"),  # a long job arrived and the probe waits on it
    (HUNG, "failed", "hung"),
])
def test_probe_timeout_asks_health_again(_asr_health, after, verdict, words):
    """Idle when asked first, then the probe times out: /health decides."""
    _asr_health.routes["health"].side_effect = [httpx.Response(200, json=IDLE),
                                                httpx.Response(200, json=after)]
    _asr_health.post("http://asr:8000/v1/audio/transcriptions").side_effect = \
        httpx.ReadTimeout("no answer")
    result = check(ASR)
    assert result.verdict == verdict and words in result.detail


def test_server_without_work_report_is_checked_as_before(_asr_health):
    _asr_health.routes["health"].respond(json={"status": "ok"})
    _asr_health.post("http://asr:8000/v1/audio/transcriptions").side_effect = \
        httpx.ReadTimeout("slow")
    result = check(ASR)
    assert result.verdict == "failed" and "(wedged?)" in result.detail
