"""MAX_UPLOAD_MB for the speech server, enforced while the body arrives.

FastAPI's form parsing writes the whole upload to a temp file before a handler can
count it, so without this a 2 GB chunked POST fills the container's /tmp before the
413. A declared Content-Length over the cap is refused before the body is read; a
chunked body is counted as it streams and cut at the cap (as 413, raised where the
form parser reads, so FastAPI answers it). The limit is checked again on the file
itself in audio_io.spooled.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_SLACK = 64 * 1024  # multipart boundaries and the small text fields


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes + FORM_SLACK
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await self._refuse(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"upload is larger than {self.max_bytes // (1024 * 1024)} MB (MAX_UPLOAD_MB)"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": self._message()}, status_code=413)(scope, receive, send)
