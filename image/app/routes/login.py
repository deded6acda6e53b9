"""`/login` and `/logout`: the dashboard's session cookie, given for the token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse

from starlette.datastructures import Headers

from ..access.auth import COOKIE, Auth, client_address, session_cookie
from ..access.throttle import Throttled

router = APIRouter(tags=["login"])
MONTH = 30 * 24 * 3600


@router.get("/login", response_class=RedirectResponse, status_code=303,
            responses={401: {"description": "wrong token"}})
async def login_link(request: Request,
                     token: Annotated[str | None, Query()] = None) -> Response:
    """The login URL printed at first start: sets the session cookie, opens the
    dashboard. Without a token, the dashboard asks for one."""
    response = RedirectResponse("/", status_code=303)
    if token is not None:
        _grant(request, response, token)
    return response


@router.post("/login", status_code=204, responses={401: {"description": "wrong token"}})
async def login(request: Request, token: Annotated[str, Form()]) -> Response:
    """The dashboard's login form."""
    response = Response(status_code=204)
    _grant(request, response, token)
    return response


@router.post("/logout", status_code=204)
async def logout(request: Request) -> Response:
    """Ends this browser's session: its cookie no longer works, even if kept."""
    auth: Auth = request.app.state.auth
    if auth.sessions is not None:
        auth.sessions.revoke(session_cookie(Headers(scope=request.scope)))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


def _grant(request: Request, response: Response, token: str) -> None:
    auth: Auth = request.app.state.auth
    if auth.token is None or auth.sessions is None:
        return  # auth is off: nothing to grant
    client = client_address(request.scope)
    if (wait := auth.throttle.retry_after(client)) > 0:
        raise Throttled(wait)
    if not auth.token_ok(token.strip()):
        auth.throttle.failed(client)
        raise HTTPException(401, "wrong token: use SPARK_CONTROL_TOKEN or the one in "
                                 "DATA_DIR/auth-token")
    response.set_cookie(COOKIE, auth.sessions.create(), max_age=MONTH, path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
