"""Local mode: the project's own speech server (CPU engine) as a child process.

With no Spark configured, spark-control runs `uvicorn main:app` from
image/parakeet_patches on loopback and supervises it: restarted with backoff when it
dies, stopped with spark-control. `LocalProcesses` answers the registry's questions
in the shape of `Docker` (inspect, memory, start/stop/restart), so the registry, the
watchdog and the dashboard treat the local server like a container on the Spark.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from .errors import CommandFailed
from .remote.docker import ContainerInfo

log = logging.getLogger(__name__)
NAME = "local-speech"
MAX_BACKOFF_S = 30.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _dies_with(parent: int) -> None:
    """In the child, before exec: SIGTERM when spark-control dies, even by SIGKILL (it
    kept running, 400 MB, and a restart started a second one)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _is_speech_server(pid: int, app_dir: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"main:app" in argv and app_dir.encode() in argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def longest_wav_mb(longest_s: float) -> int:
    """MiB of a 16 kHz mono 16-bit WAV of `longest_s` seconds, rounded up, plus 1."""
    return math.ceil(longest_s * 16000 * 2 / 2**20) + 1


class LocalSpeech:
    """One supervised speech-server process. `upload_mb` is its MAX_UPLOAD_MB: what
    spark-control sends it (16 kHz WAVs of at most a chunk), not the public upload cap,
    which applies to the compressed original."""

    def __init__(self, app_dir: Path, port: int, log_path: Path, upload_mb: int,
                 engine: str = "cpu") -> None:
        self.argv = [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(app_dir),
                     "--host", "127.0.0.1", "--port", str(port)]
        self.env = {**os.environ, "ENGINE": engine, "MAX_UPLOAD_MB": str(upload_mb)}
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.pid_path = log_path.with_suffix(".pid")
        self.app_dir = str(app_dir)
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
            await self._stop_leftover()
            await self._spawn()

    async def _stop_leftover(self) -> None:
        """A server an earlier spark-control left running (its pid file says which):
        stopped, so that a restart never runs two."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if pid != os.getpid() and _is_speech_server(pid, self.app_dir):
            log.warning("stopping the local speech server an earlier run left (pid %d)", pid)
            with contextlib.suppress(ProcessLookupError):  # it may exit meanwhile
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not _is_speech_server(pid, self.app_dir):
                        break
                    await asyncio.sleep(0.1)
                else:
                    os.kill(pid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)

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
        self.pid_path.unlink(missing_ok=True)

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
            parent = os.getpid()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                preexec_fn=lambda: _dies_with(parent))
        self.pid_path.write_text(f"{self.proc.pid}\n")
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
