"""Which Host names this server answers to (DNS rebinding).

A page on evil.example whose name is re-pointed at this machine reaches the API as a
same-origin page (its Origin and the request's Host are both evil.example), so the
same-origin check cannot see it. The Host header can: only names and addresses this
machine goes by are served, whatever the auth setting. ALLOWED_HOSTS adds the names
people use (a DNS name on the LAN, the host's address when spark-control runs in a
container, a reverse proxy's name).
"""

from __future__ import annotations

import socket

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import send_json
from ..config import Settings

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def host_name(header: str) -> str:
    """'Name:9999' -> 'name'; '[::1]:9999' -> '::1'."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0].rstrip(".") if value.count(":") == 1 else value.rstrip(".")


def default_hosts(settings: Settings) -> set[str]:
    """Loopback, the bind address, this machine's names and their addresses."""
    names = {*LOOPBACK, socket.gethostname().lower(), socket.getfqdn().lower()}
    if settings.bind_host not in ("0.0.0.0", "::", ""):
        names.add(settings.bind_host.lower())
    for name in list(names - LOOPBACK):
        try:
            names |= {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            continue
    return names | {h.lower() for h in settings.allowed_hosts}


class HostCheckMiddleware:
    def __init__(self, app: ASGIApp, allowed: set[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        name = host_name(Headers(scope=scope).get("host", ""))
        if name in self.allowed:
            return await self.app(scope, receive, send)
        await send_json(send, 400, {
            "detail": f"this server does not answer to the name {name!r}: add it to "
                      "ALLOWED_HOSTS if people reach spark-control by it",
            "error": "bad_host"})
