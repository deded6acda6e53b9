"""The SSH path against a real sshd: host keys, auth, loss, timeouts and quoting."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from app.remote.docker import Docker
from app.errors import AuthFailed, ContainerNotFound, HostKeyRejected, RemoteTimeout
from app.server import ssh_target
from app.remote.ssh import SSHClient
from helpers import control, service, sim_settings, wait_for

pytestmark = pytest.mark.sim


def test_changed_host_key_is_refused(sim):
    keys = Path(sim.env()["SSH_KNOWN_HOSTS"]).parent
    settings = sim_settings(sim, ssh_known_hosts=keys / "wrong_known_hosts")
    with control(settings) as client:
        body = wait_for(lambda: (b := client.get("/api/services").json())["spark2"]["reachable"]
                        is False and b, what="refusal")
        action = client.post("/api/services/magpie-tts/restart")
    assert "host key is not in SSH_KNOWN_HOSTS" in body["spark2"]["detail"]
    assert {s["state"] for s in body["services"]} == {"unreachable"}
    assert action.status_code == 502
    assert action.json()["error"] == "host_key_rejected"


def test_unknown_host_key_is_refused(sim, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyRejected, match="has changed|is not in SSH_KNOWN_HOSTS"):
        asyncio.run(_run(sim_settings(sim, ssh_known_hosts=empty), ["true"]))


def test_rejected_client_key_is_auth_failed(sim):
    keys = Path(sim.env()["SSH_KEY_PATH"]).parent
    settings = sim_settings(sim, ssh_key_path=keys / "other_ed25519")
    with pytest.raises(AuthFailed, match="rejected the key"):
        asyncio.run(_run(settings, ["true"]))


def test_sshd_down_answers_fast_with_unreachable_then_recovers(sim):
    with control(sim_settings(sim)) as client:
        wait_for(lambda: client.get("/api/services").json()["spark2"]["reachable"], what="up")
        sim.stop_sshd()

        started = time.monotonic()
        body = client.get("/api/services").json()
        assert time.monotonic() - started < 1.0  # served from the cache, no SSH call
        body = wait_for(lambda: (b := client.get("/api/services").json())["spark2"]["reachable"]
                        is False and b, timeout=10, what="unreachable")
        assert "cannot reach SSH on 127.0.0.1" in body["spark2"]["detail"]
        assert service(client, "parakeet-asr")["state"] == "unreachable"

        started = time.monotonic()
        action = client.post("/api/services/magpie-tts/restart")
        assert time.monotonic() - started < 5.0
        assert action.status_code == 503
        assert action.json()["error"] == "unreachable"
        assert client.get("/readyz").status_code == 503

        sim.start_sshd()
        wait_for(lambda: service(client, "parakeet-asr")["state"] == "healthy", timeout=15,
                 what="reconnect after sshd came back")


def test_command_timeout_keeps_the_connection_usable(sim):
    async def scenario() -> tuple[float, bytes]:
        ssh = SSHClient(ssh_target(sim_settings(sim)))
        try:
            started = time.monotonic()
            with pytest.raises(RemoteTimeout, match="did not finish within 0.5 s"):
                await ssh.run(["sleep", "5"], timeout=0.5)
            elapsed = time.monotonic() - started
            return elapsed, (await ssh.run(["echo", "still here"])).stdout
        finally:
            await ssh.close()

    elapsed, out = asyncio.run(scenario())
    assert elapsed < 2.5
    assert out == b"still here\n"


def test_shell_metacharacters_are_passed_literally(sim, tmp_path):
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    hostile = f"x; touch {marker}"
    path_name = f"a b;$(touch {marker})`id`'q\".txt"

    async def scenario() -> tuple[bytes, bytes]:
        settings = sim_settings(sim)
        ssh = SSHClient(ssh_target(settings))
        docker = Docker(ssh, settings.docker_argv)
        try:
            with pytest.raises(ContainerNotFound):
                await docker.inspect(hostile)
            with pytest.raises(ContainerNotFound):
                await docker.restart(hostile)
            await docker.copy_in("parakeet-asr", "/opt", {path_name: b"payload"})
            cat = await docker.exec("parakeet-asr", ["cat", f"/opt/{path_name}"])
            echo = await ssh.run(["echo", "$(id)", "`id`", "*", f"; touch {marker}"])
            return cat.check().stdout, echo.stdout
        finally:
            await ssh.close()

    content, echoed = asyncio.run(scenario())
    assert content == b"payload"
    assert echoed == f"$(id) `id` * ; touch {marker}\n".encode()
    assert not marker.exists()


async def _run(settings, argv: list[str]) -> None:
    ssh = SSHClient(ssh_target(settings))
    try:
        await ssh.run(argv)
    finally:
        await ssh.close()
