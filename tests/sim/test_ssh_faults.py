"""The SSH path against a real sshd: host keys, auth, loss, timeouts and quoting."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from app.remote.docker import Docker
from app.errors import (AuthFailed, ContainerNotFound, HostKeyRejected, HostUnreachable,
                        RemoteTimeout)
from app.pool.members import ssh_target
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


class SSHCalls:
    """Counts what the app's SSH client does: commands, sessions and connection tries."""

    def __init__(self, ssh: SSHClient) -> None:
        self.commands = self.connects = 0
        run, connect = ssh.run, ssh._connect

        async def counted_run(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.commands += 1
            return await run(*args, **kwargs)

        async def counted_connect():  # type: ignore[no-untyped-def]
            self.connects += 1
            return await connect()

        ssh.run, ssh._connect = counted_run, counted_connect  # type: ignore[method-assign]


def test_sshd_down_answers_from_the_cache_with_unreachable_then_recovers(sim):
    # polls every hour: after the first one, only what the test does talks to the Spark
    with control(sim_settings(sim, poll_interval_s=3600, host_poll_interval_s=3600,
                              docker_df_interval_s=3600)) as client:
        wait_for(lambda: client.get("/api/services").json()["spark2"]["reachable"], what="up")
        host = client.app.state.host_health
        wait_for(lambda: host.poller.updated_at and host.docker_disk.updated_at,
                 what="the host's first polls")
        registry = client.app.state.registry
        calls = SSHCalls(registry.docker.ssh)
        sim.stop_sshd()

        before = client.get("/api/services").json()
        assert before["spark2"]["reachable"] is True  # the cache, as last polled
        assert (calls.commands, calls.connects) == (0, 0)  # a read never calls SSH

        client.portal.call(registry.docker_poller.refresh)  # the next poll, now
        assert calls.connects == 1  # one try, refused at once, no retry loop
        body = client.get("/api/services").json()
        assert body["spark2"]["reachable"] is False
        assert "cannot reach SSH on 127.0.0.1" in body["spark2"]["detail"]
        assert service(client, "parakeet-asr")["state"] == "unreachable"

        connects = calls.connects
        action = client.post("/api/services/magpie-tts/restart")
        # one try for the restart, one for the registry's refresh after every action:
        # no retry loop keeps the request waiting
        assert calls.connects == connects + 2
        assert action.status_code == 503
        assert action.json()["error"] == "unreachable"
        assert client.get("/readyz").status_code == 503

        sim.start_sshd()
        client.portal.call(registry.docker_poller.refresh)
        client.portal.call(registry.health_pollers["parakeet-asr"].refresh)
        assert service(client, "parakeet-asr")["state"] == "healthy"  # reconnected


def test_command_timeout_keeps_the_connection_usable(sim):
    async def scenario() -> tuple[bool, bytes]:
        ssh = SSHClient(ssh_target(sim_settings(sim)))
        try:
            await ssh.run(["true"])
            connection = ssh._conn
            with pytest.raises(RemoteTimeout, match="did not finish within 0.5 s"):
                await ssh.run(["sleep", "5"], timeout=0.5)
            out = (await ssh.run(["echo", "still here"])).stdout
            return ssh._conn is connection, out
        finally:
            await ssh.close()

    same_connection, out = asyncio.run(scenario())
    assert same_connection  # the timeout closed its channel, not the connection
    assert out == b"still here\n"


def test_a_session_lost_mid_command_is_unreachable_and_the_next_command_reconnects(sim):
    # sshd dies under a running command: no exit status comes back (was "exited None")
    async def scenario() -> bytes:
        ssh = SSHClient(ssh_target(sim_settings(sim)))
        try:
            await ssh.run(["true"])
            running = asyncio.create_task(ssh.run(["sleep", "30"]))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(sim.stop_sshd)
            with pytest.raises(HostUnreachable, match="lost the SSH (session|connection) to "
                                                      r".*while running `sleep 30`"):
                await asyncio.wait_for(running, 20)
            await asyncio.to_thread(sim.start_sshd)
            return (await ssh.run(["echo", "back"])).stdout
        finally:
            await ssh.close()

    assert asyncio.run(scenario()) == b"back\n"


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
