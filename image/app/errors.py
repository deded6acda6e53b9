"""Remote failures: one exception tree, mapped to HTTP responses in one place.

Everything that can go wrong while talking to Spark 2 raises a `RemoteError`:

    RemoteError                 anything between us and Spark 2 failed
    ├── NotConfigured           no Spark is configured (SPARK2_HOST is empty)       503
    ├── SSHError                the SSH path itself failed
    │   ├── HostUnreachable     refused, no route, no answer, or connection lost   503
    │   ├── AuthFailed          the server rejected our key                        502
    │   └── HostKeyRejected     the host key is unknown or changed                 502
    ├── RemoteTimeout           a command or request outlived its deadline         504
    ├── CommandFailed           a remote command exited non-zero (keeps stderr)    502
    │   └── ContainerNotFound   docker has no container of that name               502
    └── UpstreamError           an HTTP service on Spark 2 misbehaved
        ├── UpstreamUnavailable connection refused or reset                        503
        │   └── NoSpeechHost    no pool member can take work (each one's reason)   503
        ├── ModelMismatch       chunks came back from different embedding models   502
        └── UpstreamHTTPError   it answered with an error status                   502
                                (its own 400/413/415/422, the caller's request
                                refused, is passed through as that status)

Every error carries a message a person can act on; `remote_error_response`
turns one into `{"detail": ..., "error": <kind>}` with the status above. The same
shape is given to every other refusal (`HTTPException`s, whose kind follows from
the status, and request validation, whose field list becomes one sentence), so a
client reads `detail` and `error` whatever went wrong.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .metrics import REMOTE_ERRORS


class RemoteError(Exception):
    status_code = 502
    kind = "remote_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.host: str | None = None  # the pool member it came from, when one did
        REMOTE_ERRORS.labels(self.kind).inc()  # counted once, where the failure is seen


class NotConfigured(RemoteError):
    status_code = 503
    kind = "not_configured"


class SSHError(RemoteError):
    kind = "ssh_error"


class HostUnreachable(SSHError):
    status_code = 503
    kind = "unreachable"


class AuthFailed(SSHError):
    kind = "auth_failed"


class HostKeyRejected(SSHError):
    kind = "host_key_rejected"


class RemoteTimeout(RemoteError):
    status_code = 504
    kind = "timeout"


class CommandFailed(RemoteError):
    kind = "command_failed"

    def __init__(self, argv: Sequence[str], exit_status: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.exit_status = exit_status
        self.stderr = stderr.strip()
        shown = self.stderr[-600:] or "(no output on stderr)"
        command = shlex.join(self.argv)
        command = command if len(command) <= 120 else command[:117] + "..."
        super().__init__(f"`{command}` exited {exit_status}: {shown}")


class ContainerNotFound(CommandFailed):
    kind = "container_not_found"

    def __init__(self, argv: Sequence[str], exit_status: int | None, stderr: str,
                 container: str) -> None:
        super().__init__(argv, exit_status, stderr)
        self.container = container
        self.message = (f"container {container!r} does not exist on Spark 2; create it there "
                        "or fix the container name in the settings")
        self.args = (self.message,)


class UpstreamError(RemoteError):
    kind = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    kind = "upstream_unavailable"


class NoSpeechHost(UpstreamUnavailable):
    kind = "no_speech_host"


class ModelMismatch(UpstreamError):
    kind = "model_mismatch"


class UpstreamHTTPError(UpstreamError):
    kind = "upstream_http_error"
    REFUSALS = {400, 413, 415, 422}  # the service refused the caller's request itself

    def __init__(self, service: str, url: str, status: int, body: str) -> None:
        self.url = url  # for logs; messages name the service, not its internal address
        self.status = status
        self.body = body[:500]
        super().__init__(f"{service} answered HTTP {status}: {_detail(body)}")
        if self.refused:
            self.status_code = status

    @property
    def refused(self) -> bool:
        return self.status in self.REFUSALS


def _detail(body: str) -> str:
    """The service's own `detail` when it sent one (FastAPI's shape), else the body."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else body
    return text[:500] or "(empty body)"


def remote_error_response(exc: RemoteError) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code,
                        content={"detail": exc.message, "error": exc.kind})


KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large",
         415: "unsupported_media_type", 422: "invalid_request", 429: "throttled",
         503: "unavailable"}


def http_error_response(exc: HTTPException) -> JSONResponse:
    kind = getattr(exc, "kind", None) or KINDS.get(exc.status_code, "error")
    return JSONResponse(status_code=exc.status_code, headers=exc.headers,
                        content={"detail": str(exc.detail), "error": kind})


def validation_response(exc: RequestValidationError) -> JSONResponse:
    problems = [_problem(error) for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": "; ".join(problems) or
                                                  "the request is not valid",
                                                  "error": "invalid_request"})


def _problem(error: dict) -> str:
    where, *rest = [str(p) for p in error.get("loc", ())] or ["request"]
    name = ".".join(rest)
    place = {"query": f"query parameter '{name}'", "path": f"path segment '{name}'",
             "body": f"body field '{name}'" if name else "the request body",
             "header": f"header '{name}'"}.get(where, where)
    if error.get("type") == "json_invalid":
        return f"the request body is not valid JSON ({error.get('ctx', {}).get('error', '')})"
    if error.get("type") == "missing":
        return f"{place} is missing"
    message = str(error.get("msg", "not valid"))
    return f"{place}: {message.removeprefix('Value error, ')}"  # a validator's own words


def install_error_handlers(app: FastAPI) -> None:
    async def remote(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RemoteError)
        return remote_error_response(exc)

    async def http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return http_error_response(exc)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_response(exc)

    app.add_exception_handler(RemoteError, remote)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(RequestValidationError, invalid)
