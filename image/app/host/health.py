"""One poller for Spark 2's host health (stats.py), shared by every reader.

Remote: the command goes through the Docker client's long-lived shell, so a poll
is one line on an open SSH channel, not a new session. Local mode reads this
machine with the same command.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from pydantic import BaseModel

from ..config import Settings
from ..errors import CommandFailed, NotConfigured
from ..poller import Poller
from ..registry import Busy
from ..remote.docker import Docker
from .alerts import HostWarning, HostWarnings
from .docker_disk import DockerDiskRow, PruneResult, disk_usage, prune
from .history import HostHistory, HostPoint
from .metrics import export_host
from .stats import HostSnapshot, host_script, parse_host


class HostStatus(BaseModel):
    source: str  # "spark2", "local", or "none" (external mode: no host to read)
    reachable: bool | None  # None: not polled yet, or nothing to poll
    snapshot: HostSnapshot | None
    error: str | None = None
    checked_at: float | None = None
    warnings: list[HostWarning] = []
    docker_disk: list[DockerDiskRow] | None = None  # docker system df, every minute
    docker_disk_error: str | None = None


class HostHistoryResponse(BaseModel):
    interval_s: float  # between polls; points may average several
    points: list[HostPoint]


class HostHealth:
    def __init__(self, settings: Settings, docker: Docker | None, local: bool,
                 history_db: Path | None = None, name: str = "spark2") -> None:
        self.source = "spark2" if docker is not None else "local" if local else "none"
        self._docker = docker
        self._argv = host_script(settings.host_disk_paths, settings.nvidia_smi_argv)
        self.interval_s = settings.host_poll_interval_s
        self.history = HostHistory(history_db or settings.data_dir / "jobs.sqlite3",
                                   self.interval_s)
        self.warnings = HostWarnings(settings)
        self.poller: Poller[HostSnapshot] = Poller(
            "host", self._fetch, self.interval_s, summarize=_summarize,
            listeners=[partial(export_host, name), self._keep])
        self.docker_disk: Poller[list[DockerDiskRow]] | None = None
        if docker is not None:
            self.docker_disk = Poller("docker disk", lambda: disk_usage(docker),
                                      settings.docker_df_interval_s, summarize=_disk_summary)
        self._pruning = asyncio.Lock()

    def start(self) -> None:
        if self.source != "none":
            self.poller.start()
        if self.docker_disk is not None:
            self.docker_disk.start()

    async def stop(self) -> None:
        await self.poller.stop()
        if self.docker_disk is not None:
            await self.docker_disk.stop()
        self.history.close()

    async def prune_docker(self) -> PruneResult:
        """Dangling images and build cache on Spark 2; then a fresh `system df`."""
        if self._docker is None or self.docker_disk is None:
            raise NotConfigured("pruning Docker needs a Spark (SPARK2_HOST)")
        if self._pruning.locked():
            raise Busy("a prune is already running")
        async with self._pruning:
            result = await prune(self._docker)
            await self.docker_disk.refresh(fresh=True)
            return result

    async def _keep(self, snap: HostSnapshot) -> None:
        self.warnings.update(snap, self.history.points)
        await self.history.add(snap)

    def recent(self, minutes: float, points: int) -> HostHistoryResponse:
        return HostHistoryResponse(interval_s=self.interval_s,
                                   points=self.history.since(minutes, points))

    def status(self) -> HostStatus:
        error = self.poller.error
        fresh = error is None and self.poller.data is not None
        return HostStatus(source=self.source,
                          reachable=None if self.poller.updated_at is None else error is None,
                          snapshot=self.poller.data if fresh else None,
                          error=error.message if error else None,
                          checked_at=self.poller.updated_at, warnings=self.warnings.list(),
                          **self._disk_fields())

    def _disk_fields(self) -> dict[str, object]:
        if self.docker_disk is None:
            return {}
        error = self.docker_disk.error
        return {"docker_disk": None if error else self.docker_disk.data,
                "docker_disk_error": error.message if error else None}

    async def _fetch(self) -> HostSnapshot:
        if self._docker is not None:
            result = await self._docker.shell.run(self._argv)
            return _parsed(result.stdout.decode("utf-8", "replace"), self._argv)
        proc = await asyncio.create_subprocess_exec(*self._argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL,
                                                    stdin=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return _parsed(out.decode("utf-8", "replace"), self._argv)


def _parsed(text: str, argv: list[str]) -> HostSnapshot:
    try:
        return parse_host(text)
    except ValueError as exc:  # not a Linux /proc: say so rather than show zeros
        raise CommandFailed(argv, None, f"unreadable host figures: {exc}") from None


def _disk_summary(rows: list[DockerDiskRow]) -> str:
    return f"{sum(r.reclaimable_bytes for r in rows) // 10**9} GB reclaimable"


def _summarize(snap: HostSnapshot) -> str:
    # Logged on change only: coarse enough not to change on every poll.
    return f"reachable; GPU {snap.gpu_detail}; {len(snap.disks)} disk(s) watched"
