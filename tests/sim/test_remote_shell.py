"""The long-lived remote shell against a real sshd: exact output, exit status,
stderr, quoting, timeouts and a lost session."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from app.errors import HostUnreachable, RemoteTimeout
from app.pool.members import ssh_target
from app.remote.shell import RemoteShell
from app.remote.ssh import SSHClient
from helpers import sim_settings

pytestmark = pytest.mark.sim


async def _session(sim, steps):
    ssh = SSHClient(ssh_target(sim_settings(sim)))
    shell = RemoteShell(ssh)
    try:
        return await steps(shell, ssh)
    finally:
        await shell.close()
        await ssh.close()


def test_output_status_and_stderr_are_split_exactly(sim):
    async def steps(shell, _):
        return [await shell.run(["printf", "a\nb"]),
                await shell.run(["printf", "line\n"]),
                await shell.run(["sh", "-c", "echo oops >&2; exit 3"]),
                await shell.run(["printf", ""])]

    no_newline, newline, failing, empty = asyncio.run(_session(sim, steps))
    assert (no_newline.stdout, no_newline.exit_status) == (b"a\nb", 0)
    assert newline.stdout == b"line\n"
    assert failing.exit_status == 3 and failing.stderr == "oops\n" and failing.stdout == b""
    assert empty.stdout == b"" and empty.ok


def test_arguments_are_never_shell_syntax(sim):
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"

    async def steps(shell, _):
        return await shell.run(["echo", f"$(touch {marker}); `touch {marker}` && touch {marker}"])

    result = asyncio.run(_session(sim, steps))
    assert result.stdout.decode().startswith("$(touch")
    assert not os.path.exists(marker)  # sshd runs on this machine: same /tmp


def test_a_timeout_closes_the_shell_and_the_next_command_works(sim):
    async def steps(shell, _):
        with pytest.raises(RemoteTimeout, match="did not finish within 0.5 s"):
            await shell.run(["sleep", "5"], timeout=0.5)
        return await shell.run(["echo", "after"])

    assert asyncio.run(_session(sim, steps)).stdout == b"after\n"


def test_a_session_lost_mid_command_is_unreachable_then_reopened(sim):
    async def steps(shell, ssh):
        await shell.run(["true"])
        first = shell._proc
        with pytest.raises(HostUnreachable, match="the shell session on .* ended"):
            await shell.run(["sh", "-c", "kill -9 $PPID"])  # the remote shell dies mid-read
        assert shell._proc is None  # dropped, not reused
        again = await shell.run(["echo", "again"])
        assert shell._proc is not None and shell._proc is not first
        return again

    assert asyncio.run(_session(sim, steps)).stdout == b"again\n"


def test_a_session_that_ended_between_commands_is_reopened_without_an_error(sim):
    async def steps(shell, ssh):
        await shell.run(["true"])
        first = shell._proc
        first.stdin.write(b"exit 0\n")  # the remote shell goes away between commands
        await first.wait_closed()
        result = await shell.run(["echo", "x"])  # noticed before writing: a new session
        assert shell._proc is not first
        return result

    assert asyncio.run(_session(sim, steps)).stdout == b"x\n"


def test_a_session_that_ends_as_a_command_is_sent_runs_it_on_a_new_one(sim):
    async def steps(shell, ssh):
        await shell.run(["true"])
        first = shell._proc
        first.stdin.write(b"exit 0\n")  # gone before it reads the next line, unnoticed yet
        result = await shell.run(["echo", "x"])  # no error: sent again on a new session
        assert shell._proc is not first
        return result

    assert asyncio.run(_session(sim, steps)).stdout == b"x\n"
