"""Local mode: the project's own speech server (CPU engine) as a child process.

With no Spark configured, spark-control runs `uvicorn main:app` from
image/parakeet_patches on loopback and supervises it: restarted with backoff when it
dies, stopped with spark-control. `LocalProcesses` answers the registry's questions
in the shape of `Docker` (inspect, memory, start/stop/restart), so the registry, the
watchdog and the dashboard treat the local server like a container on the Spark.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from .docker import ContainerInfo
from .errors import CommandFailed

log = logging.getLogger(__name__)
NAME = "local-speech"
MAX_BACKOFF_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LocalSpeech:
    """One supervised speech-server process."""

    def __init__(self, app_dir: Path, port: int, log_path: Path, engine: str = "cpu") -> None:
        self.argv = [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(app_dir),
                     "--host", "127.0.0.1", "--port", str(port)]
        self.env = {**os.environ, "ENGINE": engine}
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.wanted = False
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.exit_code = 0
        self.restarts = 0  # by the supervisor, after the process died by itself
        self.backoff = 1.0
        self._watch: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.wanted = True
        if not self.running:
            await self._spawn()

    async def stop(self, grace_s: float) -> None:
        self.wanted = False
        if self._watch:
            self._watch.cancel()
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
            self._exited()

    async def restart(self, grace_s: float) -> None:
        await self.stop(grace_s)
        await self.start()

    def info(self) -> ContainerInfo:
        running = self.running
        status = "running" if running else ("created" if self.started_at is None else "exited")
        return ContainerInfo(
            name=NAME, status=status, running=running, oom_killed=False,
            exit_code=self.exit_code, started_at=_iso(self.started_at),
            finished_at=_iso(self.finished_at), restart_count=self.restarts, health=None,
            memory_limit=0, memory_swap=0, pid=self.proc.pid if running and self.proc else 0)

    def rss_bytes(self) -> int | None:
        if not self.running or self.proc is None:
            return None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        kb = next((line.split()[1] for line in status.splitlines()
                   if line.startswith("VmRSS:")), None)
        return int(kb) * 1024 if kb else None

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self.started_at, self.finished_at = time.time(), None
        log.info("local speech server started (pid %d) at %s; log in %s", self.proc.pid,
                 self.url, self.log_path)
        self._watch = asyncio.create_task(self._supervise(self.proc))

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        """Restart the server when it dies by itself, backing off while it keeps dying
        within a minute of starting (a broken install, a port taken)."""
        await proc.wait()
        self._exited()
        if not self.wanted:
            return
        lived = (self.finished_at or 0) - (self.started_at or 0)
        self.backoff = 1.0 if lived > 60 else min(self.backoff * 2, MAX_BACKOFF_S)
        log.error("local speech server exited with %s; restarting in %.0f s (see %s)",
                  self.exit_code, self.backoff, self.log_path)
        await asyncio.sleep(self.backoff)
        if self.wanted and not self.running:
            self.restarts += 1
            await self._spawn()

    def _exited(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            self.exit_code = self.proc.returncode
            self.finished_at = self.finished_at or time.time()


class LocalProcesses:
    """The `Docker` methods the registry uses, acting on the local speech server."""

    def __init__(self, speech: LocalSpeech) -> None:
        self.speech = speech

    async def inspect_many(self, names: Sequence[str]) -> dict[str, ContainerInfo | None]:
        return {name: self.speech.info() if name == NAME else None for name in names}

    async def memory_usage(self, names: Sequence[str]) -> dict[str, int]:
        rss = self.speech.rss_bytes()
        return {NAME: rss} if NAME in names and rss is not None else {}

    async def start(self, container: str) -> None:
        self._check(container)
        await self.speech.start()

    async def stop(self, container: str, grace_s: int) -> None:
        self._check(container)
        await self.speech.stop(grace_s)

    async def restart(self, container: str, grace_s: int) -> None:
        self._check(container)
        await self.speech.restart(grace_s)

    async def update_memory(self, container: str, limit: int) -> None:
        raise CommandFailed(["update", container], None, "memory caps apply to containers "
                            "on a Spark, not to the local speech server")

    def _check(self, container: str) -> None:
        if container != NAME:
            raise CommandFailed(["start", container], 1, f"no local service {container!r}")
