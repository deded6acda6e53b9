"""Who may use the API: a bearer token for programs, a session cookie for browsers,
and a same-origin check on every state-changing request from a browser.

The token is SPARK_CONTROL_TOKEN, or one made on first start and kept in
DATA_DIR/auth-token (the login URL is logged once, when it is made). A login gives
a session of its own (sessions.py): logout revokes it, a new token revokes all.
Wrong tokens are throttled per client address (throttle.py).
AUTH_DISABLED=true turns the token off for a trusted LAN (logged at every start);
the same-origin check stays on, since it is what stops another site's page from
driving a LAN service through the user's browser.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from .sessions import Sessions
from .throttle import Throttle, Throttled

log = logging.getLogger(__name__)

COOKIE = "spark_control_session"
OPEN_PATHS = ("/livez", "/readyz", "/login", "/logout", "/docs", "/openapi.json")
PROTECTED_PREFIXES = ("/api/", "/v1/", "/metrics")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Auth:
    token: str | None  # None: auth disabled
    sessions: Sessions | None = None
    throttle: Throttle = field(default_factory=Throttle)

    def token_ok(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(candidate.encode(),
                                                              self.token.encode())

    def cookie_ok(self, candidate: str) -> bool:
        return self.sessions is not None and self.sessions.valid(candidate)


def load_auth(settings: Settings) -> Auth:
    if settings.auth_disabled:
        log.warning("AUTH_DISABLED is set: anyone who can reach port %d can control Spark 2",
                    settings.bind_port)
        return Auth(None)
    token = settings.spark_control_token or _stored_token(settings)
    return Auth(token, Sessions(settings.data_dir / "sessions.json", token))


def _stored_token(settings: Settings) -> str:
    path = settings.data_dir / "auth-token"
    if path.is_file() and (token := path.read_text().strip()):
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    log.warning("made an access token (kept in %s); log in once at "
                "http://localhost:%d/login?token=%s", path, settings.bind_port, token)
    return token


class AuthMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so SSE streams pass through untouched."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, message, kind = refusal
        extra = {401: {"www-authenticate": "Bearer"},
                 429: {"retry-after": str(math.ceil(self._wait(scope)))}}.get(status, {})
        await send_json(send, status, {"detail": message, "error": kind}, extra)

    def _wait(self, scope: Scope) -> float:
        return self.auth.throttle.retry_after(client_address(scope))

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        path, method = scope["path"], scope["method"]
        bearer = _bearer(headers)
        guarded = path.startswith(PROTECTED_PREFIXES) or method in UNSAFE
        if bearer is not None and self.auth.token is not None and guarded:
            if (wait := self._wait(scope)) > 0:  # the same words as at /login
                return 429, Throttled(wait).detail, "throttled"
            if not self.auth.token_ok(bearer):
                self.auth.throttle.failed(client_address(scope))
                # never fall back to the cookie: a wrong token would otherwise skip the
                # same-origin check below and then ride on the browser's session
                return 401, ("the bearer token is wrong: send SPARK_CONTROL_TOKEN or "
                             "DATA_DIR/auth-token"), "unauthorized"
        if method in UNSAFE and bearer is None and not same_origin(headers, scope):
            return 403, ("cross-origin request refused: state-changing requests must come "
                         "from spark-control's own pages or carry a bearer token"), "csrf"
        if self.auth.token is None or not path.startswith(PROTECTED_PREFIXES):
            return None
        if bearer is not None and self.auth.token_ok(bearer):
            return None
        if self.auth.cookie_ok(session_cookie(headers)):
            return None
        return 401, ("authentication required: send 'Authorization: Bearer <token>' "
                     "(SPARK_CONTROL_TOKEN or DATA_DIR/auth-token) or log in at /login"), \
            "unauthorized"


def same_origin(headers: Headers, scope: Scope) -> bool:
    """Origin (or, lacking it, Referer) names this host. A request with neither is a
    program, not a page in a browser (browsers send Origin on every unsafe fetch)."""
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    source = headers.get("origin") or headers.get("referer")
    if source is None:
        return True
    if source == "null":
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (scope.get("scheme", "http"), headers.get("host", ""))


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def session_cookie(headers: Headers) -> str:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


async def send_json(send: Send, status: int, body: dict[str, str],
                    extra: dict[str, str] | None = None) -> None:
    """A whole JSON response from ASGI middleware (before any route runs)."""
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
