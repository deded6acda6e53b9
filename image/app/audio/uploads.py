"""Multipart uploads read straight from the socket into DATA_DIR/spool, capped as they stream.

FastAPI's `UploadFile` lets Starlette parse the whole body into a temp file (in
/tmp) before the endpoint runs, so a size check there comes after the disk is
already full. Endpoints here take the `Request` instead and call `read_upload`: a
too-large Content-Length is refused before a byte is read, a chunked body is
counted while it streams and cut at the cap, and the file part is written once,
to its final place in the request's work directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import HTTPException, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

MB = 1024 * 1024
FORM_SLACK = 64 * 1024  # boundaries, part headers and the small text fields
MAX_FIELDS = 32


@dataclass
class Upload:
    path: Path  # the file part, on disk
    filename: str
    size: int
    fields: dict[str, list[str]]

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _FormReader:
    """python-multipart callbacks: the `file` part to disk, text fields in memory."""

    def __init__(self, out: BinaryIO, max_file: int) -> None:
        self.out, self.max_file = out, max_file
        self.fields: dict[str, list[str]] = {}
        self.filename: str | None = None
        self.size = 0
        self._part = _Part()
        self._header = (bytearray(), bytearray())
        self._disposition = b""

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self._begin, "on_part_data": self._data,
                "on_part_end": self._end, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done}

    def _begin(self) -> None:
        self._part, self._disposition = _Part(), b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header[0].extend(data[start:end])

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._header[1].extend(data[start:end])

    def _header_end(self) -> None:
        name, value = self._header
        if bytes(name).lower() == b"content-disposition":
            self._disposition = bytes(value)
        self._header = (bytearray(), bytearray())

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if self._part.name != "file":
                raise HTTPException(422, "missing form field 'file' (the audio, as a multipart "
                                         f"file upload); got a file in '{self._part.name}'")
            if self.filename is not None:
                raise HTTPException(422, "send one audio file, in the form field 'file'")
            self._part.filename = options[b"filename"].decode("utf-8", "replace")
            self.filename = self._part.filename
        elif sum(map(len, self.fields.values())) >= MAX_FIELDS:
            raise HTTPException(422, f"too many form fields (at most {MAX_FIELDS})")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part.filename is None:
            self._part.data.extend(data[start:end])
            if len(self._part.data) > FORM_SLACK:
                raise HTTPException(413, f"form field '{self._part.name}' is too long")
            return
        self.size += end - start
        if self.size > self.max_file:
            raise too_large(self.max_file)
        self.out.write(data[start:end])  # local disk, page cache: no thread hop needed

    def _end(self) -> None:
        if self._part.filename is None:
            text = self._part.data.decode("utf-8", "replace")
            self.fields.setdefault(self._part.name, []).append(text)


def too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"the upload is larger than the {max_bytes // MB} MB limit "
                              "(MAX_UPLOAD_MB)")


async def read_upload(request: Request, target: Path, max_bytes: int) -> Upload:
    """Stream a multipart form's `file` part to `target`; the form's text fields with it."""
    boundary = _boundary(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_SLACK:
        raise too_large(max_bytes)  # refused before reading the body
    with target.open("wb") as out:
        reader = _FormReader(out, max_bytes)
        await _feed(request, MultipartParser(boundary, reader.callbacks()),
                    max_bytes + FORM_SLACK)
    if reader.filename is None:
        raise HTTPException(422, "missing form field 'file' (the audio, as a multipart file "
                                 "upload)")
    if reader.size == 0:
        raise HTTPException(422, "the uploaded file is empty (0 bytes)")
    return Upload(target, reader.filename, reader.size, reader.fields)


async def _feed(request: Request, parser: MultipartParser, max_body: int) -> None:
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > max_body:
                raise too_large(max_body - FORM_SLACK)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    except ClientDisconnect:
        raise HTTPException(400, "the upload was cut off before it ended") from None


def _boundary(request: Request) -> bytes:
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise HTTPException(415, "send the audio as multipart/form-data, in the field 'file'")
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "the multipart Content-Type has no boundary")
    return boundary


def form_schema(**fields: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for an endpoint that reads its form with read_upload, so /docs
    still shows (and can send) the file and the fields."""
    properties = {"file": {"type": "string", "format": "binary",
                           "description": "the audio"}, **fields}
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {"requestBody": {"required": True,
                            "content": {"multipart/form-data": {"schema": schema}}}}
