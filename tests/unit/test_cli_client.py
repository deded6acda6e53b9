"""`spark-control transcribe`: the command-line client against the real app.

spark-control runs in this process under uvicorn (a thread, a real socket), in front
of a tiny fake speech server (another uvicorn thread); the client is called as the
command is, in-process (or as a subprocess for Ctrl-C). Its token comes the way a
user's would: the server writes DATA_DIR/auth-token, the client reads it on localhost.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import cli, client
from app.config import Settings
from app.server import create_app
from fake_speech import DIAR, WORDS
from helpers import serving
from speech_audio import wav_bytes

TXT = "[00:00:00] Speaker_0: Hi there.\n"
SRT = "1\n00:00:00,100 --> 00:00:00,800\nSpeaker_0: Hi there.\n"


class FakeSpeech:
    """The speech server's two endpoints the pipeline uses, with a delay or a failure."""

    def __init__(self) -> None:
        self.url = ""  # set once it serves
        self.delay = 0.0
        self.failure: str | None = None
        self.app = Starlette(routes=[
            Route("/v1/audio/transcriptions", self.answer(WORDS), methods=["POST"]),
            Route("/v1/audio/diarize-chunk", self.answer(DIAR), methods=["POST"]),
            Route("/v1/audio/diarize-chunk", self.answer({**DIAR, "fingerprints": {}}),
                  methods=["POST"]),
            Route("/health", self.answer({"status": "ok"}), methods=["GET"])])

    def answer(self, body: dict[str, Any]):
        async def endpoint(request: Request) -> JSONResponse:
            await request.body()
            await asyncio.sleep(self.delay)
            if self.failure:
                return JSONResponse({"detail": self.failure, "stage": "transcribe"}, 500)
            return JSONResponse(body)
        return endpoint


@pytest.fixture(scope="module")
def speech() -> Iterator[FakeSpeech]:
    fake = FakeSpeech()
    with serving(fake.app) as url:
        fake.url = url
        yield fake


@pytest.fixture(scope="module")
def control_app(speech: FakeSpeech,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """spark-control (with its token, if auth is on, in DATA_DIR/auth-token): URL, DATA_DIR."""
    data = tmp_path_factory.mktemp("control-data")
    with pytest.MonkeyPatch.context() as env:
        for name in ("SPARK_CONTROL_TOKEN", "AUTH_DISABLED", "SPARK2_HOST"):
            env.delenv(name, raising=False)
        settings = Settings(_env_file=None, parakeet_url=speech.url,  # type: ignore[call-arg]
                            data_dir=data, max_upload_mb=8, local_speech=False,
                            chunk_threshold_s=40, chunk_s=40, chunk_overlap_s=5)
        with serving(create_app(settings)) as url:
            yield url, data


@pytest.fixture
def control(control_app: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    """The server's URL, with the client's DATA_DIR set as a user on that machine has it."""
    url, data = control_app
    monkeypatch.setenv("DATA_DIR", str(data))
    return url


@pytest.fixture(autouse=True)
def user_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token, no server URL, and an empty DATA_DIR, whatever the caller's shell has."""
    for name in ("SPARK_CONTROL_TOKEN", "SPARK_CONTROL_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "no-data"))


@pytest.fixture(autouse=True)
def speech_ok(request: pytest.FixtureRequest) -> None:
    if "speech" in request.fixturenames:
        fake = request.getfixturevalue("speech")
        fake.delay, fake.failure = 0.0, None


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "talk.wav"
    path.write_bytes(wav_bytes(2.0, tone=200))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(control: str) -> httpx.Client:
    token = (Path(os.environ["DATA_DIR"]) / "auth-token")
    headers = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
    return httpx.Client(base_url=control, headers=headers, timeout=10)


# -- against the real app ----------------------------------------------------------

def test_transcribes_to_stdout_as_text_by_default(control, wav, capsys):
    assert cli.main(["transcribe", str(wav), "--server", control]) == 0
    out, err = capsys.readouterr()
    assert out == TXT
    lines = err.splitlines()
    assert lines[0] == "uploading talk.wav (0.1 MB)"
    assert any(re.fullmatch(r"job \w+ accepted: 2 s of audio", line) for line in lines)
    assert "done (100%)" in lines and lines[-1] == "done: txt written to stdout"
    assert len(lines) == len(set(lines))  # one line per step, not per event


def test_writes_srt_to_output_and_takes_the_format_from_its_suffix(control, wav, tmp_path,
                                                                   capsys):
    out = tmp_path / "talk.srt"
    assert cli.main(["transcribe", str(wav), "--server", control, "-o", str(out)]) == 0
    assert out.read_text() == SRT
    vtt = tmp_path / "talk.txt"
    assert cli.main(["transcribe", str(wav), "--server", control, "--output", str(vtt),
                     "--format", "vtt"]) == 0
    assert vtt.read_text().startswith("WEBVTT") and "<v Speaker_0>Hi there." in vtt.read_text()
    assert capsys.readouterr().out == ""


def test_json_result_is_the_contract(control, wav, capsys):
    assert client.main([str(wav), "--server", control, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["segments"] == [{"start_ms": 100, "end_ms": 800, "speaker": "Speaker_0",
                                   "text": "Hi there."}]


def test_a_long_recording_shows_each_chunk_as_it_is_done(control, tmp_path, capsys):
    long = tmp_path / "long.wav"
    long.write_bytes(wav_bytes(100.0, tone=200))
    assert client.main([str(long), "--server", control, "--format", "rttm"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("SPEAKER long 1 ")  # the RTTM file id is the upload's name
    steps = [line for line in err.splitlines() if line.startswith("transcribing")]
    assert steps[-1] == "transcribing, 3 of 3 chunks done (95%)", err
    assert "merging (97%)" in err and "done (100%)" in err


def test_a_failed_job_exits_nonzero_with_its_error(control, speech, wav, capsys):
    speech.failure = "CUDA error: out of memory"
    assert client.main([str(wav), "--server", control]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "failed (" not in err  # no progress line for the failure itself
    last = err.splitlines()[-1]
    assert last.startswith("spark-control: job ") and " failed: " in last
    assert "CUDA error: out of memory" in last and "HTTP 500" in last


def test_not_audio_exits_nonzero_with_the_servers_415_detail(control, tmp_path, capsys):
    text = tmp_path / "notes.wav"
    text.write_text("plain text\n" * 40)
    assert client.main([str(text), "--server", control]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("spark-control: the server refused the file: not a readable audio")
    assert last.endswith("(HTTP 415)")


def test_too_big_exits_nonzero_with_the_servers_413_detail(control, tmp_path, capsys):
    big = tmp_path / "big.wav"
    big.write_bytes(wav_bytes(300.0))  # 9.6 MB, over the 8 MB MAX_UPLOAD_MB
    assert client.main([str(big), "--server", control]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "spark-control: the server refused the file: the upload is larger than the 8 MB "
        "limit (MAX_UPLOAD_MB) (HTTP 413)")


def test_missing_file_fails_before_any_request(tmp_path, capsys):
    assert client.main([str(tmp_path / "nope.wav"), "--server", "http://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == f"spark-control: {tmp_path / 'nope.wav'}: no such file\n"


def test_unreachable_server_is_one_readable_line(wav, capsys):
    port = free_port()
    assert client.main([str(wav), "--server", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"spark-control: cannot reach spark-control at "
                              f"http://127.0.0.1:{port} (")
    assert "is it running?" in err[-1] and "Traceback" not in "\n".join(err)


def test_server_url_comes_from_the_environment(control, wav, monkeypatch, capsys):
    monkeypatch.setenv("SPARK_CONTROL_URL", control)
    assert client.main([str(wav)]) == 0
    assert capsys.readouterr().out == TXT


def test_ctrl_c_cancels_the_job_on_the_server(control, speech, wav):
    speech.delay = 30
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "transcribe", str(wav),
                             "--server", control], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        with api(control) as http:
            job = wait_for_running_job(http)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
            assert http.get(f"/api/audio/jobs/{job['id']}").status_code == 404
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and out == ""
    assert err.splitlines()[-1] == (f"spark-control: interrupted: job {job['id']} "
                                    "cancelled on the server")


def wait_for_running_job(http: httpx.Client, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [j for j in http.get("/api/audio/jobs").json()["jobs"]
                   if j["status"] == "running"]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError("no job started running")


# -- answers faked with respx ------------------------------------------------------

FAKE = "http://control.test:9999"


@respx.mock
def test_401_without_a_token_says_how_to_give_one(wav, capsys):
    respx.post(f"{FAKE}/api/audio/jobs").respond(401, json={"detail": "authentication required"})
    assert client.main([str(wav), "--server", FAKE]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "spark-control: the server needs a token: pass --token or set SPARK_CONTROL_TOKEN")


@respx.mock
def test_a_refused_token_names_where_it_came_from(wav, monkeypatch, capsys):
    monkeypatch.setenv("SPARK_CONTROL_TOKEN", "stale-token")
    route = respx.post(f"{FAKE}/api/audio/jobs").respond(401, json={"detail": "no"})
    assert client.main([str(wav), "--server", FAKE]) == 1
    assert route.calls.last.request.headers["authorization"] == "Bearer stale-token"
    assert "refused the token from SPARK_CONTROL_TOKEN" in capsys.readouterr().err


@respx.mock
def test_validation_errors_are_listed_on_one_line(wav, capsys):
    detail = [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"},
              {"loc": ["query", "x"], "msg": "bad\nvalue", "type": "x"}]
    respx.post(f"{FAKE}/api/audio/jobs").respond(422, json={"detail": detail})
    assert client.main([str(wav), "--server", FAKE]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "spark-control: the server refused the file: file: Field required; x: bad value "
        "(HTTP 422)")


@respx.mock
def test_a_stream_that_drops_is_reopened_and_the_result_fetched(wav, monkeypatch, capsys):
    monkeypatch.setattr(client.time, "sleep", lambda s: None)
    job = {"id": "j1", "status": "running", "stage": "transcribing", "chunk": 1,
           "chunks": 3, "percent": 35.0, "error": None}
    respx.post(f"{FAKE}/api/audio/jobs").respond(202, json={**job, "status": "queued"})
    respx.get(f"{FAKE}/api/audio/jobs/j1/events").mock(side_effect=[
        httpx.ReadError("connection reset"),
        httpx.Response(200, text=sse(job) + sse({**job, "status": "done", "percent": 100}))])
    respx.get(f"{FAKE}/api/audio/jobs/j1/result").respond(200, text="A: hello")
    assert client.main([str(wav), "--server", FAKE]) == 0
    out, err = capsys.readouterr()
    assert out == "A: hello\n"
    assert "transcribing, 1 of 3 chunks done (35%)" in err.splitlines()


@respx.mock
def test_a_stream_that_keeps_dropping_gives_up_with_the_job_id(wav, monkeypatch, capsys):
    monkeypatch.setattr(client.time, "sleep", lambda s: None)
    respx.post(f"{FAKE}/api/audio/jobs").respond(202, json={"id": "j2", "status": "queued"})
    events = respx.get(f"{FAKE}/api/audio/jobs/j2/events").mock(
        side_effect=httpx.ReadError("connection reset"))
    assert client.main([str(wav), "--server", FAKE]) == 1
    assert events.call_count == client.RECONNECTS + 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("spark-control: lost the event stream of job j2 (connection reset)")


def sse(job: dict[str, Any]) -> str:
    return f"event: progress\ndata: {json.dumps(job)}\n\n: ping\n\n"


# -- pieces ------------------------------------------------------------------------

def test_token_order_and_the_local_token_file(tmp_path, monkeypatch):
    (tmp_path / "auth-token").write_text("from-file\n")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert client.resolve_token(None, "http://localhost:9999") == (
        "from-file", str(tmp_path / "auth-token"))
    assert client.resolve_token(None, "http://[::1]:9999")[0] == "from-file"
    assert client.resolve_token(None, "http://spark-control.lan:9999") == (None, "")
    monkeypatch.setenv("SPARK_CONTROL_TOKEN", "from-env")
    assert client.resolve_token(None, "http://localhost:9999") == ("from-env",
                                                                   "SPARK_CONTROL_TOKEN")
    assert client.resolve_token("given", "http://x") == ("given", "--token")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_one_line_redrawn():
    screen = Terminal()
    ui = client.Progress(screen, width=10)
    ui.upload(0, 2_000_000, "a.wav")
    ui.upload(1_000_000, 2_000_000, "a.wav")
    ui.job({"status": "running", "stage": "transcribing", "chunk": 2, "chunks": 4,
            "percent": 50.0})
    ui.note("done")
    assert screen.getvalue().split("\r")[1:] == [
        "uploading a.wav [..........]   0% of 2.0 MB",
        "uploading a.wav [#####.....]  50% of 2.0 MB",
        "transcribing, 2 of 4 chunks done [#####.....]  50%".ljust(44) + "\ndone\n"]


def test_progress_in_a_log_is_a_line_per_step():
    log = io.StringIO()
    ui = client.Progress(log)
    for percent, chunk in ((5, 0), (35, 1), (35, 1), (65, 2)):
        ui.job({"status": "running", "stage": "transcribing", "chunk": chunk, "chunks": 3,
                "percent": percent})
    ui.job({"status": "running", "stage": "merging", "chunk": 3, "chunks": 3, "percent": 97})
    assert log.getvalue().splitlines() == [
        "transcribing, 0 of 3 chunks done (5%)", "transcribing, 1 of 3 chunks done (35%)",
        "transcribing, 2 of 3 chunks done (65%)", "merging (97%)"]


def test_the_upload_streams_from_disk_in_blocks(tmp_path):
    path = tmp_path / "big.wav"
    path.write_bytes(b"\0" * 300_000)
    seen: list[int] = []
    with respx.mock:
        route = respx.post(f"{FAKE}/api/audio/jobs").respond(202, json={"id": "j"})
        with httpx.Client(base_url=FAKE) as http:
            client.submit(http, path, client.Progress(io.StringIO()))
            request = route.calls.last.request
    assert request.headers["content-length"] == str(len(request.content))
    assert b"\0" * 300_000 in request.content
    with path.open("rb") as file:
        reading = client._Reading(file, seen.append)
        while reading.read(65536):
            pass
    assert seen == [65536, 131072, 196608, 262144, 300000, 300000]


def test_spark_control_serve_and_bare_spark_control_take_the_same_options(monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(cli, "serve", lambda argv: calls.append(argv) or 0)
    assert cli.main(["--port", "1234"]) == 0 and cli.main(["serve", "--port", "1234"]) == 0
    assert calls == [["--port", "1234"], ["--port", "1234"]]


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        client.main(["a.wav", "--server", "localhost:9999"])
    assert exit_.value.code == 2 and "not an http(s) URL" in capsys.readouterr().err


@respx.mock
def test_something_else_at_the_url_is_named_not_a_traceback(wav, capsys):
    respx.post(f"{FAKE}/api/audio/jobs").respond(200, text="<html>router login</html>")
    assert client.main([str(wav), "--server", FAKE]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"spark-control: {FAKE}/api/audio/jobs answered something that is not JSON "
        "(HTTP 200): is it spark-control?")


def test_help_names_both_commands(capsys):
    helps = []
    for argv in (["--help"], ["serve", "--help"], ["transcribe", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 0
        helps.append(capsys.readouterr().out)
    assert helps[0] == helps[1] and "--port PORT" in helps[0]
    assert "other command: spark-control transcribe FILE" in helps[0]
    assert helps[2].startswith("usage: spark-control transcribe [-h] [--format")
    assert "{txt,json,srt,vtt,rttm}" in helps[2] and "SPARK_CONTROL_TOKEN" in helps[2]
