"""Structured log lines (logfmt) carrying the id of the request they belong to.

Every HTTP request gets an id (the caller's `X-Request-ID` when it is sane, else a
new one), echoed in the response header and put on every log line written while
the request is handled, and one access line is logged when it ends.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import datetime, timezone

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str] = ContextVar("request_id", default="-")
SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access = logging.getLogger("app.access")


class RequestIdFilter(logging.Filter):
    """Stamps the record while still inside the request's context."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc)
        fields = {"ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "level": record.levelname.lower(), "logger": record.name,
                  "request_id": getattr(record, "request_id", "-"),
                  "msg": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        line = " ".join(f"{k}={_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += " exc=" + _value(self.formatException(record.exc_info))
        return line


def _value(value: object) -> str:
    text = str(value)
    if text and not re.search(r'[\s="]', text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def handler(stream: object = None) -> logging.Handler:
    out = logging.StreamHandler(stream)  # type: ignore[arg-type]
    out.setFormatter(LogfmtFormatter())
    out.addFilter(RequestIdFilter())
    return out


def configure(level: str) -> None:
    root = logging.getLogger()
    root.handlers[:] = [handler()]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if SANE_ID.match(given) else uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        started, status = time.perf_counter(), 500

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            access.info("%s %s %d", scope["method"], scope["path"], status, extra={"fields": {
                "status": status, "ms": round((time.perf_counter() - started) * 1000, 1)}})
            request_id.reset(token)
