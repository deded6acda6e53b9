"""Security headers on every response (pure ASGI, so SSE streams pass untouched).

- `frame-ancestors 'none'` (and X-Frame-Options for old browsers): no other page, not
  even one on another port of this host, can frame the dashboard and steer a click
  onto a button (clickjacking).
- A Content-Security-Policy for the dashboard that its own code passes: scripts,
  styles and fetches from this origin only; audio and downloads from the page's own
  blob: URLs. The API docs (/docs) load Swagger UI from this server (fastapi-offline's
  bundled assets): same-origin only too, with the inline start-up script and styles
  that page is built with.
- nosniff, and no Referer (with the login token in it) sent to other sites.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DASHBOARD_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                 "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
                 "object-src 'none'; base-uri 'none'; form-action 'self'; "
                 "frame-ancestors 'none'")
ALWAYS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
          (b"referrer-policy", b"same-origin")]
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")
DOCS_ASSETS = "/docs-assets"
DOCS = "/docs"  # DOCS_ASSETS included


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    csp = DOCS_CSP if path.startswith(DOCS) else DASHBOARD_CSP
    return [*ALWAYS, (b"content-security-policy", csp.encode())]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *[(k, v) for k, v in extra if k not in names]]
            await send(message)

        await self.app(scope, receive, send_with_headers)
