"""One HTTP contract, two engines, each served by `uvicorn main:app` in its own process.

`server` is the CPU engine here; tests/real_nemo/test_nemo_server.py runs the
engine-agnostic tests below (all but the *_accuracy ones) against the NeMo engine on
the real toolkit. Accuracy is only measurable on the CPU engine: the NeMo models there
have random weights."""

from __future__ import annotations

import io
import wave

import httpx
import numpy as np
import pytest

from speech_audio import wav_bytes
from testaudio.evaluate import der, read_rttm, diarization_turns, wer

TIMEOUT = 300


def upload(server, path: str, data: bytes, **form) -> httpx.Response:
    files = {"file": ("audio.wav", data, "audio/wav")}
    return httpx.post(f"{server.url}{path}", files=files, data=form, timeout=TIMEOUT)


def clip(conversation, seconds: float) -> bytes:
    """The first `seconds` of the conversation, as a WAV."""
    with wave.open(str(conversation.wav)) as src:
        frames = src.readframes(int(seconds * src.getframerate()))
        params = src.getparams()
    out = io.BytesIO()
    with wave.open(out, "wb") as dst:
        dst.setparams(params)
        dst.writeframes(frames)
    return out.getvalue()


def test_health(server):
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok" and body["engine"] == server.engine
    assert body["asr_loaded"] is True and body["diarizer_loaded"] is True
    assert all(body["models"][k] for k in ("asr", "diarizer", "embedding"))


def test_verbose_json_words_follow_the_clip(server, conversation):
    response = upload(server, "/v1/audio/transcriptions", conversation.wav.read_bytes(),
                      response_format="verbose_json",
                      **{"timestamp_granularities[]": ["word", "segment"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["duration"] == pytest.approx(conversation.duration, abs=0.05)
    words = body["words"]
    assert words
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= body["duration"] for w in words)
    assert body["segments"]
    assert all(0 <= s["start"] <= s["end"] <= body["duration"] for s in body["segments"])


def test_words_accuracy(cpu_server, conversation):
    response = upload(cpu_server, "/v1/audio/transcriptions", conversation.wav.read_bytes(),
                      response_format="verbose_json", **{"timestamp_granularities[]": "word"})
    words = response.json()["words"]
    reference = " ".join(line.text for line in conversation.lines)
    # real recognition, not garbage (~1.0); accuracy itself is bench/speech_accuracy.py's job
    assert wer(reference, " ".join(w["word"] for w in words)) <= 0.5
    for line in conversation.lines[:5]:  # a line's first word starts near the line
        first = min(words, key=lambda w: abs(w["start"] - line.start))
        assert abs(first["start"] - line.start) < 0.5


def test_every_response_format(server, conversation):
    audio = clip(conversation, 8)
    for fmt, check in [("json", lambda r: r.json()["text"]),
                       ("text", lambda r: r.text.strip()),
                       ("srt", lambda r: r.text.startswith("1\n00:00:0")),
                       ("vtt", lambda r: r.text.startswith("WEBVTT\n\n00:00:0")),
                       ("verbose_json", lambda r: r.json()["segments"][0]["text"])]:
        response = upload(server, "/v1/audio/transcriptions", audio, response_format=fmt)
        assert response.status_code == 200, (fmt, response.text)
        assert check(response), (fmt, response.text[:200])


def test_diarize_gives_turns_in_the_clip(server, conversation):
    response = upload(server, "/v1/audio/diarize", conversation.wav.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["speakers_detected"] == len({s["speaker"] for s in body["segments"]}) >= 1
    assert body["segments"][0]["speaker"] == "Speaker_0"
    assert all(0 <= s["confidence"] <= 1 and 0 <= s["start_s"] < s["end_s"] <= body["duration"]
               for s in body["segments"])


def test_diarize_accuracy(cpu_server, conversation):
    body = upload(cpu_server, "/v1/audio/diarize", conversation.wav.read_bytes()).json()
    assert body["speakers_detected"] == len(conversation.speakers)
    assert der(read_rttm(conversation.rttm), diarization_turns(body)) <= 0.15


def test_diarize_chunk_gives_one_unit_fingerprint_per_speaker(server, conversation):
    body = upload(server, "/v1/audio/diarize-chunk", conversation.wav.read_bytes()).json()
    speakers = {s["speaker"] for s in body["segments"]}
    assert set(body["fingerprints"]) == speakers
    vectors = np.array(list(body["fingerprints"].values()))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize(("data", "field", "status", "words"), [
    (b"", "file", 400, "empty"),
    (b"just some text, not audio\n" * 10, "file", 400, "not a readable audio"),
    (wav_bytes(3.0, tone=220)[:20000], "file", 400, "truncated"),
    (wav_bytes(0.0), "file", 400, "no samples"),
    (wav_bytes(1.0), "audio", 422, "missing form field 'file'"),
], ids=["empty", "text", "truncated", "zero-length", "wrong-field"])
def test_bad_input_is_a_4xx_with_a_message(server, data, field, status, words):
    for path in ("/v1/audio/transcriptions", "/v1/audio/diarize"):
        response = httpx.post(f"{server.url}{path}", files={field: ("x.wav", data)},
                              timeout=TIMEOUT)
        assert response.status_code == status, (path, response.text)
        assert words in response.json()["detail"]
