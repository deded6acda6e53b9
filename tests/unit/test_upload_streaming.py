"""MAX_UPLOAD_MB holds while the body streams, against spark-control as a real process
on a real socket: nothing lands in the temp folder, the spool never grows past the cap,
and a cut-off upload leaves nothing behind."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_for
from sim.spark2 import free_ports

CAP_MB = 5
BLOCK = b"\x00" * (1024 * 1024)
HEAD = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
        b"Content-Type: audio/wav\r\n\r\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[int, str, Path, Path]]:
    root = tmp_path_factory.mktemp("uploads")
    data, tmpdir = root / "data", root / "tmp"
    tmpdir.mkdir()
    port = free_ports(1)[0]
    env = {**os.environ, "DATA_DIR": str(data), "TMPDIR": str(tmpdir), "SPARK2_HOST": "",
           "PARAKEET_URL": "http://127.0.0.1:9", "MAX_UPLOAD_MB": str(CAP_MB),
           "ALLOWED_HOSTS": "127.0.0.1"}
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=log)
    try:
        wait_for(lambda: (data / "auth-token").exists() and _status(port, "/livez") == 200,
                 timeout=60, what=f"spark-control to serve (log: {root / 'server.log'})")
        yield port, (data / "auth-token").read_text().strip(), data / "spool", tmpdir
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _status(port: int, path: str) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            return int(s.recv(100).split()[1])
    except OSError:
        return None


def _request(token: str, extra: str) -> bytes:
    return ("POST /api/audio/transcribe-with-speakers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: multipart/form-data; boundary=b0undary\r\n" + extra + "\r\n").encode()


def _answer(s: socket.socket, timeout: float) -> bytes | None:
    if select.select([s], [], [], timeout)[0]:
        return s.recv(65536)
    return None


def _largest(folder: Path) -> int:
    return max((p.stat().st_size for p in folder.rglob("*") if p.is_file()), default=0)


def test_chunked_upload_is_cut_at_the_cap(server):
    port, token, spool, tmpdir = server
    sent, answer, biggest = 0, None, 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_request(token, "Transfer-Encoding: chunked\r\n"))
        s.sendall(b"%x\r\n%s\r\n" % (len(HEAD), HEAD))
        try:
            while sent < 200 * len(BLOCK) and answer is None:
                s.sendall(b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK))
                sent += len(BLOCK)
                biggest = max(biggest, _largest(spool), _largest(tmpdir))
                answer = _answer(s, 0)
        except OSError:  # the server closed while we were still sending
            pass
        answer = answer or _answer(s, 5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 413"), answer
    assert b"5 MB limit (MAX_UPLOAD_MB)" in answer
    assert sent < 60 * len(BLOCK), f"the server read {sent / len(BLOCK):.0f} MB past a 5 MB cap"
    assert biggest <= CAP_MB * len(BLOCK)
    assert not any(tmpdir.iterdir())  # never through Starlette's temp files
    wait_for(lambda: not any(spool.iterdir()), what="the spool to be emptied")


def test_declared_length_over_the_cap_is_refused_before_the_body(server):
    port, token, spool, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_request(token, f"Content-Length: {2000 * len(BLOCK)}\r\n"))
        answer = _answer(s, 5)  # without one byte of the body sent
    assert answer is not None and answer.startswith(b"HTTP/1.1 413"), answer


def test_upload_cut_off_midway_leaves_nothing(server):
    port, token, spool, tmpdir = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_request(token, f"Content-Length: {4 * len(BLOCK)}\r\n") + HEAD)
        s.sendall(BLOCK)  # 1 of 4 MB, then the client goes away
        wait_for(lambda: _largest(spool) > 0, what="the upload to reach the spool")
    wait_for(lambda: not any(spool.iterdir()), what="the spool to be emptied")
    assert not any(tmpdir.iterdir())
    assert _status(port, "/livez") == 200
