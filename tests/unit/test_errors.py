from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import errors


@pytest.mark.parametrize(("exc", "status", "kind"), [
    (errors.NotConfigured("no spark"), 503, "not_configured"),
    (errors.HostUnreachable("down"), 503, "unreachable"),
    (errors.AuthFailed("key"), 502, "auth_failed"),
    (errors.HostKeyRejected("mitm?"), 502, "host_key_rejected"),
    (errors.RemoteTimeout("slow"), 504, "timeout"),
    (errors.CommandFailed(["docker", "start", "x"], 1, "boom\n"), 502, "command_failed"),
    (errors.ContainerNotFound(["docker", "start", "x"], 1, "No such container: x", "x"),
     502, "container_not_found"),
    (errors.UpstreamUnavailable("refused"), 503, "upstream_unavailable"),
    (errors.UpstreamHTTPError("parakeet-asr", "http://s/health", 500, "CUDA error"), 502,
     "upstream_http_error"),
])
def test_each_remote_error_maps_to_one_status_with_a_readable_detail(exc, status, kind):
    app = FastAPI()
    errors.install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    response = TestClient(app).get("/boom")
    assert response.status_code == status
    assert response.json() == {"detail": exc.message, "error": kind}
    assert "Traceback" not in response.text


def test_command_failed_keeps_stderr_and_names_the_verb():
    exc = errors.CommandFailed(["docker", "-H", "unix:///s", "update", "x"], 125,
                               "Error: Minimum memory limit allowed is 6MB\n")
    assert exc.stderr == "Error: Minimum memory limit allowed is 6MB"
    assert exc.message == ("`docker -H unix:///s update x` exited 125: "
                           "Error: Minimum memory limit allowed is 6MB")
