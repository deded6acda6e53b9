"""`/login` and `/logout`: the dashboard's session cookie, given for the token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse

from ..auth import COOKIE, Auth

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
async def logout() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


def _grant(request: Request, response: Response, token: str) -> None:
    auth: Auth = request.app.state.auth
    if auth.token is None:
        return  # auth is off: nothing to grant
    if not auth.token_ok(token.strip()):
        raise HTTPException(401, "wrong token: use SPARK_CONTROL_TOKEN or the one in "
                                 "DATA_DIR/auth-token")
    response.set_cookie(COOKIE, auth.session_value(), max_age=MONTH, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
