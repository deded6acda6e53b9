"""transcribe-with-speakers: bad input and speech-server faults (respx fault injection;
the real speech server is exercised in tests/speech/test_pipeline.py)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import httpx
import pytest
import respx

from app.config import Settings
from helpers import authed
from fake_speech import DIAR, URL, WORDS
from speech_audio import wav_bytes


@pytest.fixture
def client(tmp_path):
    settings = Settings(_env_file=None, parakeet_url=URL, data_dir=tmp_path, max_upload_mb=1)
    with authed(settings) as c:
        yield c
    spool = tmp_path / "spool"
    assert not spool.exists() or not any(spool.iterdir())  # every path cleans up


def post(client, data: bytes, field: str = "file"):
    return client.post("/api/audio/transcribe-with-speakers",
                       files={field: ("a.wav", data, "audio/wav")})


@respx.mock
def test_happy_path_merges_words_and_turns(client):
    respx.post(f"{URL}/v1/audio/transcriptions").respond(json=WORDS)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    body = post(client, wav_bytes(2.0, tone=200)).json()
    assert body["segments"] == [{"start_ms": 100, "end_ms": 800, "speaker": "Speaker_0",
                                 "text": "Hi there."}]
    assert body["models"] == {"transcription": "a", "diarization": "d"}


@pytest.mark.parametrize(("data", "field", "status", "words"), [
    (b"", "file", 422, "empty"),
    (b"this is text, not audio\n" * 50, "file", 415, "not a readable audio"),
    (wav_bytes(0.0), "file", 422, "0 s long"),
    (wav_bytes(40.0), "file", 413, "MAX_UPLOAD_MB"),
    (wav_bytes(1.0), "audio", 422, "file"),
], ids=["empty", "text", "zero-duration", "too-big", "no-file-field"])
def test_bad_input(client, data, field, status, words):
    response = post(client, data, field)
    assert response.status_code == status, response.text
    assert words in str(response.json()["detail"])


@respx.mock
@pytest.mark.parametrize(("fault", "status", "words"), [
    (httpx.Response(500, text="CUDA error"), 503, "deep check was started"),
    (httpx.ReadTimeout("slow"), 504, "did not answer"),
    (httpx.ConnectError("refused"), 503, "cannot reach the speech server"),
], ids=["500", "timeout", "refused"])
def test_speech_server_faults(client, fault, status, words):
    route = respx.post(f"{URL}/v1/audio/transcriptions")
    if isinstance(fault, Exception):
        route.side_effect = fault
    else:
        route.return_value = fault
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    response = post(client, wav_bytes(2.0, tone=200))
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    if status == 503 and "deep" in words:
        assert response.headers["retry-after"] == "60"


def test_no_speech_server_configured_is_503(tmp_path):
    with authed(Settings(_env_file=None, data_dir=tmp_path, local_speech=False)) as c:
        response = post(c, wav_bytes(1.0))
    assert response.status_code == 503
    assert "PARAKEET_URL" in response.json()["detail"]


@respx.mock
@pytest.mark.parametrize(("fmt", "expected"), [
    ("srt", "1\n00:00:00,100 --> 00:00:00,800\nSpeaker_0: Hi there.\n"),
    ("vtt", "WEBVTT\n\n00:00:00.100 --> 00:00:00.800\n<v Speaker_0>Hi there.\n"),
    ("rttm", "SPEAKER a 1 0.100 0.700 <NA> <NA> Speaker_0 <NA> <NA>\n"),
    ("txt", "[00:00:00] Speaker_0: Hi there.\n"),
])
def test_formats_name_the_speakers(client, fmt, expected):
    respx.post(f"{URL}/v1/audio/transcriptions").respond(json=WORDS)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    response = client.post(f"/api/audio/transcribe-with-speakers?format={fmt}",
                           files={"file": ("a.wav", wav_bytes(2.0, tone=200), "audio/wav")})
    assert response.status_code == 200, response.text
    assert response.text.startswith(expected)


def test_unknown_format_is_422(client):
    response = client.post("/api/audio/transcribe-with-speakers?format=docx",
                           files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")})
    assert response.status_code == 422


def _encoded(tmp_path: Path, suffix: str, *args: str) -> bytes:
    """A real file made by ffmpeg (a tone), in the container format of `suffix`."""
    import subprocess

    out = tmp_path / f"tone{suffix}"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=300:d=2", *args,
                    "-y", str(out)], check=True)
    return out.read_bytes()


@respx.mock
@pytest.mark.parametrize(("suffix", "args"), [
    (".mp3", []), (".ogg", ["-c:a", "libvorbis"]), (".flac", []),
    (".wav", ["-ar", "48000", "-ac", "2"]), (".m4a", []),
], ids=["mp3", "ogg", "flac", "wav-48k-stereo", "m4a"])
def test_any_audio_format_is_accepted(client, tmp_path, suffix, args):
    respx.post(f"{URL}/v1/audio/transcriptions").respond(json=WORDS)
    diarize = respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    response = client.post("/api/audio/transcribe-with-speakers", files={
        "file": ("misnamed.wav", _encoded(tmp_path, suffix, *args), "audio/wav")})
    assert response.status_code == 200, response.text
    sent = diarize.calls.last.request.content
    assert b"RIFF" in sent and b"WAVE" in sent  # normalised to WAV before it left


@pytest.mark.parametrize(("data", "status", "words"), [
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, 415, "audio"),
    (wav_bytes(2.0)[:30], 415, "audio"),
    (bytes(range(256)) * 40, 415, "audio"),
], ids=["png", "header-only-wav", "random-bytes"])
def test_more_bad_files(client, data, status, words):
    response = post(client, data)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_json_body_instead_of_a_form_is_415(client):
    response = client.post("/api/audio/transcribe-with-speakers", json={"file": "x"})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


@respx.mock
def test_hostile_file_name_is_never_used_as_a_path(client, tmp_path):
    respx.post(f"{URL}/v1/audio/transcriptions").respond(json=WORDS)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    response = client.post("/api/audio/transcribe-with-speakers", files={
        "file": ("../../../tmp/$(touch x);evil.wav", wav_bytes(1.0, tone=200), "audio/wav")})
    assert response.status_code == 200
    assert not (tmp_path.parent / "tmp").exists()


@respx.mock
@pytest.mark.parametrize(("answer", "status", "words"), [
    (httpx.Response(200, text="<html>oops</html>"), 502, "not a JSON object"),
    (httpx.Response(200, json={"words": [{"word": "x"}]}), 502, "unexpected answer"),
    # the speech server refusing the request itself is the caller's 4xx (issue 14, 10)
    (httpx.Response(400, json={"detail": "language 'fr' is not supported"}), 400,
     "parakeet-asr answered HTTP 400: language 'fr' is not supported"),
    (httpx.Response(404, json={"detail": "Not Found"}), 502, "HTTP 404"),
], ids=["html", "missing-fields", "upstream-400", "upstream-404"])
def test_malformed_speech_server_answers_are_502(client, answer, status, words):
    respx.post(f"{URL}/v1/audio/transcriptions").mock(return_value=answer)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    response = post(client, wav_bytes(2.0, tone=200))
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert "Traceback" not in response.text
    assert URL not in response.text  # the service is named, not its internal address


@pytest.mark.parametrize(("name", "expected"), [
    ("Team Meeting (final).m4a", "Team_Meeting_final"), ("../../etc/passwd", "passwd"),
    ("", "recording"), ("...", "recording"), ("ünïcode talk.wav", "n_code_talk"),
])
def test_rttm_file_ids_are_safe_names(name, expected):
    from app.audio.exports import file_id

    assert file_id(name) == expected


def _lying_wav(claimed_s: float, carried_s: float) -> bytes:
    """A WAV whose data-size field claims claimed_s over carried_s of samples."""
    real = wav_bytes(carried_s, tone=300)
    data = real[44:]
    claimed = int(claimed_s * 16000) * 2
    return (b"RIFF" + struct.pack("<I", 36 + claimed) + real[8:40] + struct.pack("<I", claimed)
            + data)


def _flac_claiming(tmp_path: Path, claimed_s: float, carried_s: float) -> bytes:
    """A FLAC whose STREAMINFO total-samples field claims claimed_s over carried_s."""
    flac = tmp_path / "real.flac"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=f=300:d={carried_s}",
                    "-ar", "16000", "-y", str(flac)], check=True)
    data = bytearray(flac.read_bytes())
    field = int.from_bytes(data[18:26], "big")  # STREAMINFO bytes 10-17: ...+36-bit total
    field = (field & ~((1 << 36) - 1)) | int(claimed_s * 16000)
    data[18:26] = field.to_bytes(8, "big")
    return bytes(data)


@respx.mock
@pytest.mark.parametrize(("make", "seconds"), [
    (lambda tmp: _lying_wav(0.05, 5.5), 5.5),
    (lambda tmp: _flac_claiming(tmp, 36000, 5.0), 5.0),
], ids=["wav-header-too-short", "flac-header-10h"])
def test_duration_comes_from_the_samples_not_the_header(client, tmp_path, make, seconds):
    seen: list[int] = []

    def transcribe(request):
        seen.append(len(request.content))
        return httpx.Response(200, json=WORDS)

    respx.post(f"{URL}/v1/audio/transcriptions").mock(side_effect=transcribe)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    response = post(client, make(tmp_path))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["duration"] == pytest.approx(seconds, abs=0.05)
    assert body.get("chunks", 1) == 1  # not 63 chunks of a 10 h that is not there
    assert seen and seen[0] > seconds * 32000  # every sample reached the speech server


@respx.mock
@pytest.mark.parametrize("refuse", [True, False])
@pytest.mark.parametrize("path", ["/api/audio/transcribe-with-speakers", "/api/audio/jobs",
                                  "/v1/audio/transcriptions"])
def test_long_recordings_wait_while_the_host_swaps_only_when_enabled(tmp_path, refuse, path):
    from app.host.alerts import HostWarning
    respx.post(f"{URL}/v1/audio/transcriptions").respond(json=WORDS)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    settings = Settings(_env_file=None, parakeet_url=URL, data_dir=tmp_path,
                        chunk_threshold_s=5, chunk_s=60, chunk_overlap_s=10,
                        refuse_long_jobs_while_swapping=refuse)
    with authed(settings) as client:
        client.app.state.host_health.warnings.active["swap"] = HostWarning(
            kind="swap", message="2.00 GiB of swap in use", since=0)
        short = client.post(path, files={"file": ("s.wav", wav_bytes(3.0, tone=200))})
        long = client.post(path, files={"file": ("l.wav", wav_bytes(8.0, tone=200))})
    assert short.status_code in (200, 202), short.text
    if refuse:
        assert long.status_code == 503 and long.headers["retry-after"] == "120"
        assert "Spark 2 is swapping (2.00 GiB of swap in use)" in long.json()["detail"]
    else:
        assert long.status_code in (200, 202), long.text
