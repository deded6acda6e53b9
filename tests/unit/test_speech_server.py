"""The speech server's HTTP contract with a scripted engine (fault injection).

The same contract against real engines (CPU with real speech, NeMo stand-in) is in
tests/speech/.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import audio_io
import main
from engine_base import Diarization, EngineError, TextSegment, Transcript, Turn, Word
from speech_audio import wav_bytes


class ScriptedEngine:
    name = "scripted"
    asr_model, diarizer_model, embedding_model = "asr-x", "diar-y", "emb-z"

    def __init__(self, fail: str | None = None, loaded: bool = True,
                 load_error: Exception | None = None) -> None:
        self.fail = fail
        self.asr_loaded = self.diarizer_loaded = False
        self._loaded, self._load_error = loaded, load_error
        self.release = threading.Event()
        self.seen: list[int] = []

    def load(self) -> None:
        if self._load_error:
            raise self._load_error
        if not self._loaded:
            self.release.wait(10)
        self.asr_loaded = self.diarizer_loaded = True

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        self.seen.append(audio.size)
        if language not in (None, "en"):
            raise ValueError(f"language {language!r} is not supported by this engine")
        if self.fail == "transcribe":
            raise EngineError("transcribe", "CUDA error: an illegal memory access")
        words = [Word("Hello,", 0.1, 0.4), Word("world.", 0.5, 0.9), Word("Bye.", 1.2, 1.5)]
        return Transcript("Hello, world. Bye.", words,
                          [TextSegment(0.1, 0.9, "Hello, world."), TextSegment(1.2, 1.5, "Bye.")])

    def diarize(self, audio: np.ndarray, max_speakers: int | None = None) -> Diarization:
        if self.fail == "diarize":
            raise RuntimeError("boom")
        return Diarization([Turn(0.0, 1.0, "Speaker_0", 0.9), Turn(1.1, 1.6, "Speaker_1", 0.8)])

    def fingerprints(self, audio: np.ndarray, diarization: Diarization) -> dict[str, list[float]]:
        return {s: [1.0, 0.0] for s in diarization.speakers}


@pytest.fixture
def client():
    engine = ScriptedEngine()
    with TestClient(main.create_app(engine)) as c:
        _wait_loaded(c)
        yield c


def _wait_loaded(c: TestClient) -> None:
    for _ in range(100):
        if c.get("/health").json()["status"] != "loading":
            return
        threading.Event().wait(0.02)


def post(c: TestClient, path: str, data: bytes | None = None, **form) -> object:
    files = {"file": ("a.wav", data if data is not None else wav_bytes(2.0), "audio/wav")}
    return c.post(path, files=files, data=form)


def test_health_names_engine_and_models(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["engine"] == "scripted"
    assert body["asr_loaded"] and body["diarizer_loaded"]
    assert body["models"] == {"asr": "asr-x", "diarizer": "diar-y", "embedding": "emb-z"}


def test_formats(client):
    assert post(client, "/v1/audio/transcriptions").json() == {"text": "Hello, world. Bye."}
    text = post(client, "/v1/audio/transcriptions", response_format="text")
    assert text.text == "Hello, world. Bye."
    verbose = post(client, "/v1/audio/transcriptions", response_format="verbose_json",
                   **{"timestamp_granularities[]": ["word", "segment"]}).json()
    assert verbose["duration"] == 2.0 and verbose["language"] == "english"
    assert verbose["words"][1] == {"word": "world.", "start": 0.5, "end": 0.9}
    assert [s["text"] for s in verbose["segments"]] == ["Hello, world.", "Bye."]
    plain = post(client, "/v1/audio/transcriptions", response_format="verbose_json").json()
    assert "words" not in plain and len(plain["segments"]) == 2  # OpenAI's default: segment
    srt = post(client, "/v1/audio/transcriptions", response_format="srt").text
    assert srt.startswith("1\n00:00:00,100 --> 00:00:00,900\nHello, world.\n")
    vtt = post(client, "/v1/audio/transcriptions", response_format="vtt").text
    assert vtt.startswith("WEBVTT\n\n00:00:00.100 --> 00:00:00.900\nHello, world.\n")


def test_audio_is_decoded_to_16k_mono_whatever_comes_in(client):
    engine = client.app.state.engine
    post(client, "/v1/audio/transcriptions", wav_bytes(1.5, rate=44100, channels=2, tone=440))
    assert engine.seen[-1] == 24000


def test_diarize_and_chunk(client):
    body = post(client, "/v1/audio/diarize", max_speakers="2").json()
    assert body == {"duration": 2.0, "speakers_detected": 2,
                    "segments": [{"start_s": 0.0, "end_s": 1.0, "speaker": "Speaker_0",
                                  "confidence": 0.9},
                                 {"start_s": 1.1, "end_s": 1.6, "speaker": "Speaker_1",
                                  "confidence": 0.8}],
                    "models": {"asr": "asr-x", "diarizer": "diar-y", "embedding": "emb-z"}}
    chunk = post(client, "/v1/audio/diarize-chunk").json()
    assert chunk["fingerprints"] == {"Speaker_0": [1.0, 0.0], "Speaker_1": [1.0, 0.0]}


def _truncated_wav() -> bytes:
    whole = wav_bytes(3.0, tone=300)
    return whole[: len(whole) // 4]


BAD_INPUT = [
    ("/v1/audio/transcriptions", b"", {}, 400, "empty (0 bytes)"),
    ("/v1/audio/transcriptions", b"hello, this is text\n" * 20, {}, 400, "not a readable audio"),
    ("/v1/audio/transcriptions", _truncated_wav(), {}, 400, "truncated"),
    ("/v1/audio/transcriptions", wav_bytes(0.0), {}, 400, "no samples"),
    ("/v1/audio/transcriptions", None, {"response_format": "mp3"}, 400, "response_format"),
    ("/v1/audio/transcriptions", None, {"timestamp_granularities[]": "char"}, 400, "word and"),
    ("/v1/audio/transcriptions", None, {"language": "fr"}, 400, "not supported"),
    ("/v1/audio/diarize", b"", {}, 400, "empty"),
    ("/v1/audio/diarize", None, {"max_speakers": "0"}, 422, "max_speakers"),
    ("/v1/audio/diarize", None, {"max_speakers": "two"}, 422, "max_speakers"),
    ("/v1/audio/diarize-chunk", b"\x00" * 1000, {}, 400, "not a readable audio"),
]
BAD_IDS = ["empty", "text", "truncated", "zero-length", "format", "granularity", "language",
           "diarize-empty", "max-speakers-0", "max-speakers-word", "chunk-zeros"]


@pytest.mark.parametrize(("path", "data", "form", "status", "words"), BAD_INPUT, ids=BAD_IDS)
def test_bad_input_is_a_4xx_with_a_message(client, path, data, form, status, words):
    response = post(client, path, data, **form)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/diarize",
                                  "/v1/audio/diarize-chunk"])
def test_wrong_field_name_says_which_field(client, path):
    response = client.post(path, files={"audio": ("a.wav", wav_bytes(1), "audio/wav")})
    assert response.status_code == 422
    assert response.json() == {"detail": "missing form field 'file' (the audio, as a multipart "
                                         "file upload)"}


def test_upload_over_the_cap_is_413(client, monkeypatch):
    monkeypatch.setattr(audio_io, "MAX_UPLOAD_BYTES", 10_000)
    response = post(client, "/v1/audio/transcriptions", wav_bytes(2.0))
    assert response.status_code == 413
    assert "MAX_UPLOAD_MB" in response.json()["detail"]


def test_no_temp_files_are_left_behind(client):
    before = set(Path(tempfile.gettempdir()).glob("asr-upload-*"))
    post(client, "/v1/audio/transcriptions")
    post(client, "/v1/audio/transcriptions", b"not audio")
    post(client, "/v1/audio/diarize", _truncated_wav())
    assert set(Path(tempfile.gettempdir()).glob("asr-upload-*")) == before


@pytest.mark.parametrize(("fail", "path", "stage"), [
    ("transcribe", "/v1/audio/transcriptions", "transcribe"),
    ("diarize", "/v1/audio/diarize", "diarize"),
])
def test_engine_failure_is_500_naming_the_stage(fail, path, stage):
    with TestClient(main.create_app(ScriptedEngine(fail=fail))) as c:
        _wait_loaded(c)
        response = post(c, path)
    assert response.status_code == 500
    assert response.json()["stage"] == stage
    assert response.json()["detail"].startswith(f"{stage} failed:")
    assert "Traceback" not in response.text


def test_requests_while_loading_get_503_with_retry_after():
    engine = ScriptedEngine(loaded=False)
    with TestClient(main.create_app(engine)) as c:
        health = c.get("/health").json()
        response = post(c, "/v1/audio/transcriptions")
        engine.release.set()
    assert health["status"] == "loading" and health["asr_loaded"] is False
    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"


def test_a_failed_load_shows_in_health_and_refuses_requests():
    engine = ScriptedEngine(load_error=OSError("weights not found"))
    with TestClient(main.create_app(engine)) as c:
        _wait_loaded(c)
        health = c.get("/health").json()
        response = post(c, "/v1/audio/diarize")
    assert health["status"] == "error"
    assert "weights not found" in health["error"]
    assert response.status_code == 503
    assert "failed to load" in response.json()["detail"]


class BlockingEngine(ScriptedEngine):
    """A model call that does not return until released: a long chunk, or a hung GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.running = threading.Event()
        self.unblock = threading.Event()

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        self.running.set()
        self.unblock.wait(10)
        return super().transcribe(audio, language)


@pytest.mark.parametrize(("hung_after", "status"), [("60", "ok"), ("0.2", "hung")])
def test_health_reports_model_work_and_a_hung_call(monkeypatch, hung_after, status):
    monkeypatch.setenv("HUNG_AFTER_S", hung_after)
    monkeypatch.setenv("HUNG_RTF", "0")
    engine = BlockingEngine()
    with TestClient(main.create_app(engine)) as c:
        _wait_loaded(c)
        assert c.get("/health").json()["work"]["calls"] == 0
        worker = threading.Thread(target=post, args=(c, "/v1/audio/transcriptions"))
        worker.start()
        assert engine.running.wait(5)
        threading.Event().wait(0.4)
        body = c.get("/health").json()
        engine.unblock.set()
        worker.join(10)
        after = c.get("/health").json()
    assert body["status"] == status
    assert body["work"]["calls"] == 1 and body["work"]["stage"] == "transcribe"
    assert body["work"]["audio_s"] == 2.0 and body["work"]["waiting_s"] >= 0.4
    assert body["work"]["hung"] == (status == "hung")
    assert (body["error"] is not None) == (status == "hung")
    assert after["status"] == "ok" and after["work"]["calls"] == 0


@pytest.fixture
def served(monkeypatch):
    """The speech server on a real socket (uvicorn in a thread), capped at 5 MB."""
    import socket as socket_module

    import uvicorn

    from sim.spark2 import free_ports
    monkeypatch.setattr(main, "MAX_UPLOAD_BYTES", 5 * 2**20, raising=False)
    monkeypatch.setattr(audio_io, "MAX_UPLOAD_BYTES", 5 * 2**20)
    port = free_ports(1)[0]
    server = uvicorn.Server(uvicorn.Config(main.create_app(ScriptedEngine()), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        try:
            socket_module.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            threading.Event().wait(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def _head(port: int, extra: str) -> bytes:
    return (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: multipart/form-data; boundary=b0undary\r\n" + extra + "\r\n").encode()


def test_a_chunked_upload_is_cut_at_the_cap_while_it_streams(served):
    import select
    import socket as socket_module
    part = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n")
    block, sent, answer = b"\x00" * 2**20, 0, b""
    with socket_module.create_connection(("127.0.0.1", served), timeout=10) as s:
        s.sendall(_head(served, "Transfer-Encoding: chunked\r\n"))
        s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        try:
            while sent < 200 * len(block) and not answer:
                s.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
                if select.select([s], [], [], 0)[0]:
                    answer = s.recv(65536)
        except OSError:
            pass
        while b"MAX_UPLOAD_MB" not in answer and select.select([s], [], [], 5)[0]:
            more = s.recv(65536)  # the head and the body may come in two reads
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"MAX_UPLOAD_MB" in answer
    assert sent < 60 * len(block), f"read {sent / len(block):.0f} MB past a 5 MB cap"


def test_a_declared_length_over_the_cap_is_refused_unread(served):
    import select
    import socket as socket_module
    with socket_module.create_connection(("127.0.0.1", served), timeout=10) as s:
        s.sendall(_head(served, f"Content-Length: {2000 * 2**20}\r\n"))
        ready = select.select([s], [], [], 5)[0]
        answer = s.recv(65536) if ready else b""
    assert answer.startswith(b"HTTP/1.1 413"), answer
