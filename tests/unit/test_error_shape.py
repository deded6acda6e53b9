"""One error shape everywhere: `{"detail": <a sentence>, "error": <kind>}`, for the
app's own refusals, request validation, unknown paths and the upload checks."""

from __future__ import annotations

import pytest

from app.config import Settings
from fake_speech import URL
from helpers import authed
from speech_audio import wav_bytes

WAV = {"file": ("a.wav", wav_bytes(1.0), "audio/wav")}


@pytest.fixture
def client(tmp_path):
    with authed(Settings(_env_file=None, parakeet_url=URL, data_dir=tmp_path,
                         max_upload_mb=1)) as c:
        yield c


CASES = [
    ("post", "/api/audio/transcribe-with-speakers?format=xml", {"files": WAV}, 422,
     "invalid_request", "query parameter 'format': Input should be"),
    ("get", "/api/audio/jobs?limit=0", {}, 422, "invalid_request",
     "query parameter 'limit': Input should be greater than or equal to 1"),
    ("get", "/api/audio/jobs?limit=ten", {}, 422, "invalid_request", "query parameter 'limit'"),
    ("post", "/api/services/parakeet-asr/explode", {}, 422, "invalid_request",
     "path segment 'action'"),
    ("post", "/v1/audio/speech", {"content": b"not json",
                                  "headers": {"Content-Type": "application/json"}},
     422, "invalid_request", "the request body"),
    ("post", "/v1/audio/speech", {"json": {"text": "hi"}}, 422, "invalid_request",
     "body field 'input' is missing"),
    ("post", "/api/audio/transcribe-with-speakers",
     {"files": {"audio": ("a.wav", wav_bytes(1.0), "audio/wav")}}, 422, "invalid_request",
     "missing form field 'file'"),
    ("post", "/api/audio/jobs", {"files": {"file": ("a.wav", b"", "audio/wav")}}, 422,
     "invalid_request", "empty (0 bytes)"),
    ("post", "/api/audio/transcribe-with-speakers",
     {"files": {"file": ("a.txt", b"plain text " * 50, "text/plain")}}, 415,
     "unsupported_media_type", "not a readable audio file"),
    ("post", "/v1/audio/transcriptions",
     {"files": {"file": ("big.wav", wav_bytes(40.0), "audio/wav")}}, 413, "too_large",
     "1 MB limit (MAX_UPLOAD_MB)"),
    ("get", "/api/audio/jobs/nope", {}, 404, "not_found", "nope"),
    ("get", "/api/no-such-thing", {}, 404, "not_found", "Not Found"),
    ("put", "/api/services", {}, 405, "method_not_allowed", "Method Not Allowed"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "kind", "words"), CASES,
                         ids=[f"{c[0]} {c[1]} {c[3]}" for c in CASES])
def test_every_refusal_has_detail_and_error(client, method, path, kwargs, status, kind, words):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "error"}, body
    assert isinstance(body["detail"], str) and words in body["detail"], body
    assert body["error"] == kind
