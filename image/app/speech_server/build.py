"""`docker build` on the Spark: the context goes in on stdin over the SSH session
(`docker build -`), so nothing is written to the Spark's disk, and the build's output
comes back line by line as it is printed."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable, Mapping

import asyncssh

from ..errors import HostUnreachable, RemoteTimeout
from ..remote.docker import Docker
from .context import DOCKERFILE, BuildContext
from .images import JOB, label_args

CHUNK = 1 << 20
OnLine = Callable[[str], Awaitable[None]]


class BuildFailed(RuntimeError):
    """docker build ran and exited non-zero; the message ends with its last lines."""


def build_argv(docker: Docker, *, tag: str, build_args: Mapping[str, str],
               labels: Mapping[str, str], network: str, no_cache: bool) -> list[str]:
    return [*docker.prefix, "build", "--force-rm", "-f", DOCKERFILE, "-t", tag,
            *(["--no-cache"] if no_cache else []),
            *(["--network", network] if network else []),
            *[arg for key, value in build_args.items()
              for arg in ("--build-arg", f"{key}={value}")],
            *label_args(labels), "-"]


async def run_build(docker: Docker, context: BuildContext, argv: list[str],
                    on_line: OnLine, timeout: float) -> None:
    target = docker.ssh.target.address
    proc = await docker.ssh.open_process(shlex.join(argv))
    tail: list[str] = []

    async def keep(line: str) -> None:
        tail[:] = [*tail[-11:], line]
        await on_line(line)

    try:
        async with asyncio.timeout(timeout):
            feeder = asyncio.create_task(_feed(proc, context.tar()))
            await asyncio.gather(_lines(proc.stdout, keep), _lines(proc.stderr, keep))
            await feeder
            await proc.wait()
    except TimeoutError:
        raise RemoteTimeout(f"docker build on {target} ran past SPEECH_SERVER_BUILD_TIMEOUT_S "
                            f"({timeout:g} s)") from None
    except (asyncssh.Error, OSError) as exc:
        raise HostUnreachable(f"lost the SSH connection to {target} during the build: "
                              f"{exc or type(exc).__name__}") from None
    finally:
        proc.close()
    _check_exit(proc, target, tail)


def _check_exit(proc: asyncssh.SSHClientProcess[bytes], target: str, tail: list[str]) -> None:
    if proc.exit_status == 0:
        return
    if proc.exit_status is None and proc.exit_signal is None:
        raise HostUnreachable(f"the SSH session to {target} ended before docker build "
                              "did (connection lost)")
    how = (f"exited with {proc.exit_status}" if proc.exit_status is not None
           else f"was killed by {proc.exit_signal[0] if proc.exit_signal else 'a signal'}")
    last = "\n".join(line for line in tail if line.strip())
    raise BuildFailed(f"docker build {how}; its last lines:\n{last}")


async def _feed(proc: asyncssh.SSHClientProcess[bytes], data: bytes) -> None:
    try:
        for start in range(0, len(data), CHUNK):
            proc.stdin.write(data[start:start + CHUNK])
            await proc.stdin.drain()
        proc.stdin.write_eof()
    except (BrokenPipeError, ConnectionError, asyncssh.Error):
        pass  # docker stopped reading (a bad flag, a full disk): its exit status says why


async def _lines(stream: asyncssh.SSHReader[bytes], on_line: OnLine) -> None:
    while True:
        raw = await stream.readline()
        if not raw:
            return
        for part in raw.decode("utf-8", "replace").replace("\r", "\n").split("\n"):
            if part.strip():
                await on_line(part)


async def kill_build(docker: Docker, job_id: str) -> None:
    """End the docker CLI of `job_id`'s build on the host (docker cancels a build
    whose client goes away). The bracket keeps pkill's own shell from matching."""
    sudo = ["sudo", "-n"] if docker.prefix[:1] == ["sudo"] else []
    await docker.ssh.run([*sudo, "pkill", "-TERM", "-f", f"{JOB.replace('.', '[.]')}={job_id}"])
