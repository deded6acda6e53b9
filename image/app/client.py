"""`spark-control transcribe FILE`: send a recording to spark-control as an audio job,
show its progress on stderr, and write the result to stdout or --output.

Every failure ends with one readable line on stderr and a nonzero exit status: 1 for
a failure, 2 for bad arguments, 130 for Ctrl-C (after cancelling the job on the server,
so it does not keep the speech server busy for nobody).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlsplit

import httpx

FORMATS = ("txt", "json", "srt", "vtt", "rttm")
FINAL = ("done", "failed", "cancelled")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
NEEDS_TOKEN = "the server needs a token: pass --token or set SPARK_CONTROL_TOKEN"
# Per read, not per request: the event stream gets a ping every 15 s, and a refused
# upload is checked (ffprobe) within seconds of its end.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
RECONNECTS = 3  # a dropped event stream is reopened; its first event is the state now
Job = dict[str, Any]


class ClientError(Exception):
    """A failure, told to the user in one line."""

    exit_code = 1


class Interrupted(ClientError):
    exit_code = 130


class NeedsToken(ClientError):
    """401: the message depends on whether a token was sent (see main)."""


@dataclass(frozen=True)
class Options:
    file: Path
    format: str
    server: str
    output: Path | None
    token: str | None


# -- arguments and token -----------------------------------------------------------

def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="spark-control transcribe", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the recording (any format ffmpeg reads)")
    parser.add_argument("--format", choices=FORMATS, help="result format (default: "
                        "from the --output suffix when it names one, else txt)")
    parser.add_argument("--server", default=os.environ.get("SPARK_CONTROL_URL")
                        or "http://localhost:9999",
                        help="spark-control's URL (default: $SPARK_CONTROL_URL or "
                        "http://localhost:9999)")
    parser.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    parser.add_argument("--token", help="access token (default: $SPARK_CONTROL_TOKEN, "
                        "or $DATA_DIR/auth-token when the server is on this machine)")
    args = parser.parse_args(argv)
    parts = urlsplit(args.server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        parser.error(f"--server {args.server!r} is not an http(s) URL")
    suffix = args.output.suffix.lstrip(".").lower() if args.output else ""
    fmt = args.format or (suffix if suffix in FORMATS else "txt")
    return Options(args.file, fmt, args.server.rstrip("/"), args.output, args.token)


def resolve_token(explicit: str | None, server: str) -> tuple[str | None, str]:
    """(token, where it came from): --token, SPARK_CONTROL_TOKEN, or the token a server
    on this machine made for itself (only sent to localhost, never over the LAN)."""
    if explicit:
        return explicit, "--token"
    if env := os.environ.get("SPARK_CONTROL_TOKEN", "").strip():
        return env, "SPARK_CONTROL_TOKEN"
    if urlsplit(server).hostname not in LOCAL_HOSTS:
        return None, ""
    path = Path(os.environ.get("DATA_DIR") or "data").expanduser() / "auth-token"
    try:
        token = path.read_text().strip()
    except OSError:
        return None, ""
    return (token, str(path)) if token else (None, "")


# -- progress on stderr --------------------------------------------------------------

class Progress:
    """One line redrawn with \\r on a terminal; elsewhere (logs, pipes) a line per step."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.width = width
        self._drawn = ""  # the line on screen now (terminal) or the last step (plain)

    def bar(self, percent: float) -> str:
        filled = round(self.width * max(0.0, min(percent, 100.0)) / 100)
        return "[" + "#" * filled + "." * (self.width - filled) + f"] {percent:3.0f}%"

    def upload(self, sent: int, total: int, name: str) -> None:
        percent = 100.0 * sent / total if total else 100.0
        size = f"{total / 1e6:.1f} MB"
        self._show(f"uploading {name} {self.bar(percent)} of {size}",
                   f"uploading {name} ({size})", "upload")

    def job(self, job: Job) -> None:
        status, stage = job.get("status", ""), job.get("stage", "")
        if status in ("failed", "cancelled"):
            return  # the error follows, on a line of its own
        chunks, chunk = int(job.get("chunks") or 0), int(job.get("chunk") or 0)
        step = "waiting for a free slot" if status == "queued" else stage
        if stage == "transcribing" and chunks > 1:
            step += f", {chunk} of {chunks} chunks done"
        percent = float(job.get("percent") or 0.0)
        self._show(f"{step} {self.bar(percent)}", f"{step} ({percent:.0f}%)", step)

    def note(self, message: str) -> None:
        """A line of its own, after the progress line."""
        self.end()
        self.stream.write(message + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
        self._drawn = ""

    def _show(self, line: str, plain: str, step: str) -> None:
        if self.tty and line != self._drawn:
            self.stream.write("\r" + line.ljust(len(self._drawn)))  # blank a longer line
            self._drawn = line
        elif not self.tty and step != self._drawn:
            self.stream.write(plain + "\n")
            self._drawn = step
        else:
            return
        self.stream.flush()


# -- talking to spark-control --------------------------------------------------------

def server_detail(response: httpx.Response) -> str:
    """The server's `detail` (a string, or FastAPI's list of validation errors)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        detail = "; ".join(_validation_error(item) for item in detail)
    text = str(detail or response.text.strip()[:200] or response.reason_phrase)
    return " ".join(text.split())  # one line, whatever the server sent


def _validation_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", [])[1:])
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", item))


def answer(response: httpx.Response) -> Any:
    """The JSON body; a readable error when it is not JSON (not spark-control?)."""
    try:
        return response.json()
    except ValueError:
        raise ClientError(f"{response.url} answered something that is not JSON "
                          f"(HTTP {response.status_code}): is it spark-control?") from None


def checked(response: httpx.Response, what: str) -> httpx.Response:
    """The response if it is a success, else ClientError with the server's reason."""
    if response.status_code < 400:
        return response
    response.read()  # a streamed response has no body yet
    if response.status_code == 401:
        raise NeedsToken(NEEDS_TOKEN)
    raise ClientError(f"{what}: {server_detail(response)} (HTTP {response.status_code})")


class _Reading:
    """The open file as httpx reads it into the upload, reporting each block it takes."""

    def __init__(self, file: BinaryIO, report: Callable[[int], None]) -> None:
        self._file = file
        self._report = report

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._report(self._file.tell())
        return data

    def seek(self, offset: int, whence: int = 0) -> int:  # httpx rewinds before sending
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:  # lets httpx send a Content-Length, not a chunked body
        return self._file.fileno()


def submit(http: httpx.Client, path: Path, ui: Progress) -> Job:
    """Upload the file from disk, block by block (never whole in memory): the new job."""
    try:
        total = path.stat().st_size
        file = path.open("rb")
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    ui.upload(0, total, path.name)
    with file:
        body = _Reading(file, lambda sent: ui.upload(sent, total, path.name))
        try:
            response = http.post("/api/audio/jobs", files={"file": (path.name, body, kind)})
        except KeyboardInterrupt:
            raise Interrupted("interrupted during the upload; no job was started") from None
    ui.end()
    job = answer(checked(response, "the server refused the file"))
    if not isinstance(job, dict) or not isinstance(job.get("id"), str):
        raise ClientError(f"{response.url} did not answer with a job: is it spark-control?")
    return job


def sse_data(lines: Iterable[str]) -> Iterator[Job]:
    """The JSON `data` of each server-sent event (pings and event names are skipped:
    the data carries the job's status)."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            yield json.loads("\n".join(data))
            data = []


def events(http: httpx.Client, job_id: str) -> Iterator[Job]:
    with http.stream("GET", f"/api/audio/jobs/{job_id}/events") as response:
        checked(response, f"cannot follow job {job_id}")
        yield from sse_data(response.iter_lines())


def follow(http: httpx.Client, job_id: str, ui: Progress) -> Job:
    """The job's events until it ends; a dropped stream is reopened a few times."""
    lost: Exception | None = None
    for attempt in range(RECONNECTS + 1):
        if attempt:
            time.sleep(2 ** attempt)
        try:
            for job in events(http, job_id):
                ui.job(job)
                if job.get("status") in FINAL:
                    return job
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            lost = exc
    why = _why(lost) if lost else "it ended before the job did"
    raise ClientError(f"lost the event stream of job {job_id} ({why}); it may still be "
                      f"running: GET /api/audio/jobs/{job_id}")


def cancel(http: httpx.Client, job_id: str) -> str:
    """DELETE the job, so the server stops working on it: what became of it, in words."""
    try:
        response = http.delete(f"/api/audio/jobs/{job_id}", timeout=10.0)
    except httpx.HTTPError as exc:
        return f"could not cancel job {job_id} ({_why(exc)}): DELETE /api/audio/jobs/{job_id}"
    if response.status_code in (204, 404):
        return f"job {job_id} cancelled on the server"
    return f"could not cancel job {job_id}: {server_detail(response)}"


def result(http: httpx.Client, job_id: str, fmt: str) -> str:
    response = checked(http.get(f"/api/audio/jobs/{job_id}/result", params={"format": fmt}),
                       f"cannot fetch the result of job {job_id}")
    if fmt == "json":  # indented: the same data, readable by people too
        return json.dumps(answer(response), indent=2, ensure_ascii=False) + "\n"
    return response.text if response.text.endswith("\n") else response.text + "\n"


# -- the command ---------------------------------------------------------------------

def transcribe(http: httpx.Client, opts: Options, ui: Progress) -> str:
    """Submit, follow and fetch: the result text."""
    job = submit(http, opts.file, ui)
    job_id = job["id"]
    try:
        ui.note(f"job {job_id} accepted: {float(job.get('duration') or 0):.0f} s of audio")
        final = follow(http, job_id, ui)
    except KeyboardInterrupt:
        ui.end()
        raise Interrupted(f"interrupted: {cancel(http, job_id)}") from None
    ui.end()
    if final["status"] != "done":
        reason = final.get("error") or "no reason given"
        raise ClientError(f"job {job_id} {final['status']}: {reason}")
    return result(http, job_id, opts.format)


def write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"cannot write {output}: {exc.strerror or exc}") from None


def preflight(opts: Options) -> None:
    """Fail before a long upload on what is wrong here, not on the server."""
    if not opts.file.is_file():
        why = "is a directory" if opts.file.is_dir() else "no such file"
        raise ClientError(f"{opts.file}: {why}")
    if opts.output is not None and not opts.output.parent.is_dir():
        raise ClientError(f"cannot write {opts.output}: no directory {opts.output.parent}")


def _why(exc: BaseException | None) -> str:
    return str(exc) or type(exc).__name__


def transport_message(exc: httpx.HTTPError, server: str) -> str:
    if isinstance(exc, httpx.ConnectError):
        return (f"cannot reach spark-control at {server} ({_why(exc)}): is it running? "
                "(--server or SPARK_CONTROL_URL)")
    if isinstance(exc, httpx.TimeoutException):
        return f"spark-control at {server} did not answer in time ({type(exc).__name__})"
    return f"the connection to spark-control at {server} failed ({_why(exc)})"


def run(opts: Options, ui: Progress) -> None:
    token, source = resolve_token(opts.token, opts.server)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    preflight(opts)
    try:
        with httpx.Client(base_url=opts.server, headers=headers, timeout=TIMEOUT) as http:
            text = transcribe(http, opts, ui)
    except NeedsToken:
        if not token:
            raise
        raise ClientError(f"the server refused the token from {source}: pass the right one "
                          "with --token or SPARK_CONTROL_TOKEN") from None
    except httpx.HTTPError as exc:
        raise ClientError(transport_message(exc, opts.server)) from None
    write(text, opts.output)
    ui.note(f"done: {opts.format} written to {opts.output or 'stdout'}")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    ui = Progress(sys.stderr)
    try:
        run(opts, ui)
    except ClientError as exc:
        ui.note(f"spark-control: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:  # outside the upload and the job (nothing to cancel)
        ui.note("spark-control: interrupted")
        return Interrupted.exit_code
    return 0
