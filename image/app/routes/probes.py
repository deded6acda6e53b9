"""`/livez` and `/readyz` for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..metrics import exposition
from ..registry import Registry

router = APIRouter(tags=["probes"])


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process answers; says nothing about Spark 2."""
    return {"status": "alive"}


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when parakeet-asr is healthy and, with a Spark, Spark 2 answers over SSH
    (cached polls). Without a Spark: the local speech server, or PARAKEET_URL's."""
    registry: Registry = request.app.state.registry
    checks = {"parakeet-asr": _asr_check(registry)}
    if registry.mode != "external":
        checks = {"ssh" if registry.mode == "remote" else "local": _ssh_check(registry),
                  **checks}
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _ssh_check(registry: Registry) -> str:
    if not registry.settings.remote:
        return "ok"  # local mode: the child process is watched like a container
    poller = registry.docker_poller
    if poller.error is not None:
        return poller.error.message
    return "ok" if poller.data is not None else "not polled yet"


def _asr_check(registry: Registry) -> str:
    asr = [name for name, rt in registry.runtime.items() if rt.spec.kind == "asr"]
    if not asr:
        return "no ASR service configured"
    status = registry.status(asr[0])
    return "ok" if status.state == "healthy" else f"{status.state}: {status.state_detail}"


@router.get("/metrics", response_class=Response, tags=["operations"])
async def metrics() -> Response:
    """Prometheus metrics (needs the token, like the API)."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)
