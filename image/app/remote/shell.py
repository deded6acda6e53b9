"""Short read-only commands through one long-lived `sh` on the host.

Opening an SSH session for a command costs about 100 ms (sshd forks and sets up a
channel) before the command even starts; a line written to a shell that is already
running costs well under 1 ms. The drift check runs one `docker exec … sha256sum`
per request, so it goes through here (see bench/speech_models_latency.py).

Each command is followed by a random end marker carrying its exit status, on stdout
and on stderr, so output is split exactly. Commands run one at a time, with no
stdin; a timeout or a broken session closes the shell, and the next command opens
a new one. A session found broken by a command sent to a shell that sat idle is
reopened and the command sent once more (they are reads): an sshd restart between
polls then costs no error.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
from collections.abc import Sequence

import asyncssh

from ..errors import HostUnreachable, RemoteTimeout
from .ssh import CommandResult, SSHClient


class RemoteShell:
    def __init__(self, ssh: SSHClient) -> None:
        self.ssh = ssh
        self._proc: asyncssh.SSHClientProcess[bytes] | None = None
        self._lock = asyncio.Lock()

    async def run(self, argv: Sequence[str], timeout: float | None = None) -> CommandResult:
        deadline = timeout or self.ssh.target.command_timeout
        async with self._lock:
            idle = self._proc is not None and not self._proc.is_closing()
            try:
                return await self._run_once(argv, deadline)
            except HostUnreachable:
                if not idle:  # its session was new: nothing to retry on
                    raise
            # The shell had sat idle: its session may have ended unnoticed (sshd
            # restarted, the connection dropped). The command is a read: run it once
            # more on a new session, which reconnects or says why it cannot.
            return await self._run_once(argv, deadline)

    async def _run_once(self, argv: Sequence[str], deadline: float) -> CommandResult:
        marker = f"__spark_control_end_{secrets.token_hex(8)}"
        line = (f"{shlex.join(argv)} </dev/null; printf '\\n{marker} %d\\n' $?; "
                f"printf '\\n{marker}\\n' >&2\n")
        proc = await self._shell()
        try:
            proc.stdin.write(line.encode())
            return await asyncio.wait_for(self._read(proc, argv, marker), deadline)
        except asyncio.TimeoutError:
            self._close()
            raise RemoteTimeout(f"`{shlex.join(argv)[:117]}` on {self.ssh.target.host} "
                                f"did not finish within {deadline:g} s") from None
        except (asyncio.IncompleteReadError, asyncssh.Error, OSError) as exc:
            self._close()
            raise HostUnreachable(f"the shell session on {self.ssh.target.address} "
                                  f"ended: {exc or type(exc).__name__}") from None

    async def close(self) -> None:
        async with self._lock:
            self._close()

    async def _read(self, proc: asyncssh.SSHClientProcess[bytes], argv: Sequence[str],
                    marker: str) -> CommandResult:
        end = f"\n{marker} ".encode()
        out = await proc.stdout.readuntil(end)
        status = int((await proc.stdout.readline()).strip())
        err = await proc.stderr.readuntil(f"\n{marker}\n".encode())
        stderr = err[:-len(marker) - 2].decode("utf-8", "replace")
        return CommandResult(list(argv), status, out[:-len(end)], stderr)

    async def _shell(self) -> asyncssh.SSHClientProcess[bytes]:
        if self._proc is None or self._proc.is_closing():
            self._proc = await self.ssh.open_process("sh")
        return self._proc

    def _close(self) -> None:
        if self._proc is not None:
            self._proc.close()
            self._proc = None
