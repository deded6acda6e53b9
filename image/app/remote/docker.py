"""Docker on Spark 2, driven through the docker CLI over SSH with JSON output.

`DOCKER_CMD` gives the command prefix (`docker`, `sudo docker`,
`docker -H unix:///...`); every argument after it is quoted by the SSH layer.

The reads the pollers repeat every few seconds (`inspect`, `stats`, quick `exec`s) go
through long-lived shells (shell.py): a new SSH session per command costs sshd a fork
and the user's shell its start-up files (274 ms of CPU per container poll on the
simulated Spark, 84 ms through the shells). `stats` has a shell of its own: it samples
for about 2 s, and the quick reads should not wait behind it.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ContainerNotFound
from .shell import RemoteShell
from .ssh import CommandResult, SSHClient

_NOT_FOUND = re.compile(r"No such (?:container|object): (\S+)")
_SIZE = re.compile(r"^([\d.]+)\s*([KMGTP]?i?B)$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


@dataclass(frozen=True)
class ContainerInfo:
    """What `docker inspect` says about one container."""

    name: str
    status: str  # created, running, paused, restarting, exited, dead
    running: bool
    oom_killed: bool
    exit_code: int
    started_at: str | None
    finished_at: str | None
    restart_count: int
    health: str | None  # docker's own HEALTHCHECK status, when the image has one
    memory_limit: int  # bytes; 0 means no limit
    memory_swap: int  # bytes; -1 unlimited, 0 unset (= twice the limit)
    pid: int

    @property
    def killed_for_memory(self) -> bool:
        # `docker start` leaves OOMKilled set on a running container, so only an
        # exited container with the flag was actually killed for memory.
        return self.oom_killed and not self.running and self.status in ("exited", "dead")

    @classmethod
    def from_inspect(cls, data: Mapping) -> "ContainerInfo":
        state, host = data.get("State", {}), data.get("HostConfig", {})
        return cls(
            name=data.get("Name", "").lstrip("/"),
            status=state.get("Status", "unknown"),
            running=bool(state.get("Running")),
            oom_killed=bool(state.get("OOMKilled")),
            exit_code=int(state.get("ExitCode") or 0),
            started_at=_timestamp(state.get("StartedAt")),
            finished_at=_timestamp(state.get("FinishedAt")),
            restart_count=int(data.get("RestartCount") or 0),
            health=(state.get("Health") or {}).get("Status"),
            memory_limit=int(host.get("Memory") or 0),
            memory_swap=int(host.get("MemorySwap") or 0),
            pid=int(state.get("Pid") or 0),
        )


class Docker:
    def __init__(self, ssh: SSHClient, docker_argv: Sequence[str]) -> None:
        self.ssh = ssh
        self.shell = RemoteShell(ssh)  # quick reads: inspect, exec_quick, the host poll
        self.stats_shell = RemoteShell(ssh)  # docker stats (about 2 s a call)
        self.prefix = list(docker_argv)

    async def close(self) -> None:
        """End the long-lived shells (the SSH connection is the caller's)."""
        await self.shell.close()
        await self.stats_shell.close()

    async def inspect_many(self, names: Sequence[str]) -> dict[str, ContainerInfo | None]:
        """One `docker inspect` for all names; a missing container maps to None."""
        result = await self._read(self.shell, ["inspect", "--type", "container", *names])
        missing = set(_NOT_FOUND.findall(result.stderr))
        if not result.ok and not missing:
            result.check()
        found = {info.name: info for info in map(ContainerInfo.from_inspect,
                                                  json.loads(result.stdout or b"[]"))}
        return {name: found.get(name) for name in names}

    async def inspect(self, name: str) -> ContainerInfo:
        info = (await self.inspect_many([name]))[name]
        if info is None:
            raise ContainerNotFound(self.prefix + ["inspect", name], 1, "", name)
        return info

    async def memory_usage(self, names: Sequence[str]) -> dict[str, int]:
        """Current memory use in bytes of running containers (one `docker stats`)."""
        if not names:
            return {}
        result = (await self._read(
            self.stats_shell, ["stats", "--no-stream", "--no-trunc", "--format", "{{json .}}",
                               *names], names[0])).check()
        usage = {}
        for line in result.stdout.decode().splitlines():
            row = json.loads(line)
            usage[row["Name"]] = parse_size(row["MemUsage"].split("/")[0])
        return usage

    async def start(self, name: str) -> None:
        await self._checked(["start", name], name)

    async def stop(self, name: str, grace_s: int = 10) -> None:
        await self._checked(["stop", "-t", str(grace_s), name], name, timeout=grace_s + 30)

    async def restart(self, name: str, grace_s: int = 10) -> None:
        await self._checked(["restart", "-t", str(grace_s), name], name, timeout=grace_s + 60)

    async def logs(self, name: str, tail: int = 20) -> str:
        """The container's last output lines (stdout and stderr together)."""
        result = await self._checked(["logs", "--tail", str(tail), name], name)
        return (result.stdout.decode("utf-8", "replace") + result.stderr).strip()

    async def update_memory(self, name: str, limit_bytes: int) -> None:
        """Cap memory and forbid swap (swap limit equal to the memory limit)."""
        await self._checked(["update", "--memory", str(limit_bytes),
                             "--memory-swap", str(limit_bytes), name], name)

    async def exec(self, name: str, argv: Sequence[str], *, input: bytes | None = None,
                   timeout: float | None = None) -> CommandResult:
        """Run argv inside the container; the result keeps a non-zero exit for the caller."""
        flags = ["-i"] if input is not None else []
        result = await self._run(["exec", *flags, name, *argv], input=input, timeout=timeout)
        _raise_if_missing(result, name)
        return result

    async def exec_quick(self, name: str, argv: Sequence[str],
                         timeout: float | None = None) -> CommandResult:
        """`exec` for a short read without stdin, through the long-lived shell."""
        return await self._read(self.shell, ["exec", name, *argv], name, timeout)

    async def copy_in(self, name: str, dest_dir: str, files: Mapping[str, bytes],
                      mode: int = 0o644) -> None:
        """Write files under dest_dir inside the container, as a tar stream on stdin."""
        await self._checked(["cp", "-", f"{name}:{dest_dir}"], name, input=tar_of(files, mode))

    async def copy_out(self, name: str, path: str) -> dict[str, bytes]:
        """Regular files under `path` in the container (works when it is stopped),
        keyed by their path relative to `path`'s parent."""
        result = await self._checked(["cp", f"{name}:{path}", "-"], name)
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
            return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                    for m in tar.getmembers() if m.isfile()}

    async def run_checked(self, args: list[str], timeout: float | None = None) -> CommandResult:
        """A docker command not about one container (system df, prune); its output."""
        return (await self._run(args, timeout=timeout)).check()

    async def _checked(self, args: list[str], name: str, *, input: bytes | None = None,
                       timeout: float | None = None) -> CommandResult:
        result = await self._run(args, input=input, timeout=timeout)
        _raise_if_missing(result, name)
        return result.check()

    async def _read(self, shell: RemoteShell, args: list[str], name: str | None = None,
                    timeout: float | None = None) -> CommandResult:
        """A read through one of the long-lived shells; ContainerNotFound when the
        container `name` does not exist (a non-zero exit is the caller's)."""
        result = await shell.run(self.prefix + args, timeout=timeout)
        if name is not None:
            _raise_if_missing(result, name)
        return result

    async def _run(self, args: list[str], *, input: bytes | None = None,
                   timeout: float | None = None) -> CommandResult:
        return await self.ssh.run(self.prefix + args, input=input, timeout=timeout)


def tar_of(files: Mapping[str, bytes], mode: int = 0o644) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            member = tarfile.TarInfo(path.lstrip("/"))
            member.size, member.mode = len(content), mode
            tar.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def parse_size(text: str) -> int:
    """docker stats sizes ('7.402MiB', '1.2GB', '0B') -> bytes."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"unreadable size from docker: {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _raise_if_missing(result: CommandResult, name: str) -> None:
    if not result.ok and _NOT_FOUND.search(result.stderr):
        raise ContainerNotFound(result.argv, result.exit_status, result.stderr, name)


def _timestamp(value: str | None) -> str | None:
    # docker writes 0001-01-01T00:00:00Z for "never"
    return None if not value or value.startswith("0001-") else value

