"""One persistent SSH connection to a host, with keepalive, reconnect and timeouts.

Commands are argv lists; `shlex.join` quotes every argument, so nothing taken
from settings or a request can be read by the remote shell as syntax.
Host keys are checked against a known_hosts file and refused when unknown or
changed, unless the operator explicitly opts out.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from ..errors import AuthFailed, CommandFailed, HostKeyRejected, HostUnreachable, RemoteTimeout

log = logging.getLogger(__name__)
logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs every channel at INFO

# with the long-lived sessions (docker.py's two shells, an install's build stream) at
# most sshd's default MaxSessions of 10
MAX_CHANNELS = 7


@dataclass(frozen=True)
class SSHTarget:
    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path | None  # None: host key checking switched off by the operator
    connect_timeout: float = 5.0
    command_timeout: float = 30.0
    keepalive: float = 15.0

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    exit_status: int | None
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self) -> "CommandResult":
        if not self.ok:
            raise CommandFailed(self.argv, self.exit_status, self.stderr)
        return self


class SSHClient:
    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._channels = asyncio.Semaphore(MAX_CHANNELS)
        if target.known_hosts is None:
            log.warning("SSH host key checking is OFF (SSH_INSECURE_SKIP_HOST_KEY_CHECK): "
                        "anyone on the path to %s can impersonate it", target.host)

    async def run(self, argv: Sequence[str], *, input: bytes | None = None,
                  timeout: float | None = None) -> CommandResult:
        """Run argv on the host; a non-zero exit is returned, not raised (see `check`)."""
        command = shlex.join(argv)
        deadline = timeout or self.target.command_timeout
        conn = await self._connection()
        async with self._channels:
            try:
                done = await conn.run(command, input=input, encoding=None, check=False,
                                      timeout=deadline)
            except asyncssh.TimeoutError:
                raise RemoteTimeout(f"`{_short(argv)}` on {self.target.host} did not finish "
                                    f"within {deadline:g} s") from None
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as exc:
                await self._drop(conn)
                raise HostUnreachable(f"lost the SSH connection to {self.target.address} "
                                      f"while running `{_short(argv)}`: {exc}") from None
            except asyncssh.ChannelOpenError as exc:
                await self._drop(conn)
                raise HostUnreachable(f"{self.target.address} refused a new SSH session: "
                                      f"{exc.reason}") from None
        if done.exit_status is None and done.exit_signal is None:
            # the session closed with no exit status: its sshd (or the link) went away
            await self._drop(conn)
            raise HostUnreachable(f"lost the SSH session to {self.target.address} while "
                                  f"running `{_short(argv)}` (no exit status came back)")
        stderr = (done.stderr or b"").decode("utf-8", "replace")
        # returncode: the exit status, or minus the signal that killed the command
        return CommandResult(list(argv), done.returncode, bytes(done.stdout or b""), stderr)

    async def open_process(self, command: str) -> asyncssh.SSHClientProcess[bytes]:
        """A long-lived process with binary streams (see shell.RemoteShell); it holds
        one session, outside the MAX_CHANNELS used by `run`."""
        conn = await self._connection()
        try:
            return await conn.create_process(command, encoding=None)
        except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, OSError) as exc:
            await self._drop(conn)
            raise HostUnreachable(f"{self.target.address} refused a new SSH session: "
                                  f"{exc}") from None

    async def connected(self) -> bool:
        """Connect if needed; True when the host answers, False otherwise."""
        try:
            await self._connection()
        except (HostUnreachable, AuthFailed, HostKeyRejected):
            return False
        return True

    async def close(self) -> None:
        async with self._lock:
            conn = self._conn
            if conn is not None:
                await self._drop(conn)
                await conn.wait_closed()

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
                log.info("SSH connected to %s", self.target.address)
            return self._conn

    async def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            self._conn = None
        conn.close()

    async def _connect(self) -> asyncssh.SSHClientConnection:
        t = self.target
        known_hosts = str(t.known_hosts) if t.known_hosts is not None else None
        try:
            return await asyncio.wait_for(asyncssh.connect(
                t.host, port=t.port, username=t.user, client_keys=[str(t.key_path)],
                known_hosts=known_hosts, config=None, agent_path=None,
                keepalive_interval=t.keepalive, keepalive_count_max=3,
            ), timeout=t.connect_timeout)
        except asyncssh.HostKeyNotVerifiable:
            raise HostKeyRejected(
                f"refused {t.host}:{t.port}: its host key is not in SSH_KNOWN_HOSTS "
                f"({t.known_hosts}) or has changed. If Spark 2 was reinstalled, check the new "
                "fingerprint and replace its line in that file") from None
        except asyncssh.PermissionDenied:
            raise AuthFailed(f"{t.address} rejected the key {t.key_path}; add its public key "
                             "to that user's ~/.ssh/authorized_keys") from None
        except asyncssh.KeyImportError as exc:
            raise AuthFailed(f"cannot use SSH_KEY_PATH {t.key_path}: {exc}") from None
        except (TimeoutError, asyncio.TimeoutError):
            raise HostUnreachable(f"{t.host}:{t.port} did not answer within "
                                  f"{t.connect_timeout:g} s; is Spark 2 on?") from None
        except (OSError, asyncssh.Error) as exc:
            raise HostUnreachable(f"cannot reach SSH on {t.host}:{t.port}: {exc}") from None


def _short(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    return text if len(text) < 120 else text[:117] + "..."
