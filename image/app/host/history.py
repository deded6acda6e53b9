"""24 h of host readings: one point per poll, in memory (bounded) and in SQLite.

The deque holds at most 24 h / HOST_POLL_INTERVAL_S points (17 280 at 5 s, ~4 MB);
every point is also written to the `host_history` table of DATA_DIR/jobs.sqlite3,
so a restart of spark-control keeps the day. Rows older than 24 h are deleted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from ..storage import open_db
from .stats import HostSnapshot

KEEP_S = 24 * 3600
COLUMNS = ("at", "memory_used_pct", "swap_used_bytes", "load1", "gpu_util_pct", "gpu_temp_c",
           "gpu_power_w", "disk_used_pct")
SCHEMA = ("CREATE TABLE IF NOT EXISTS host_history (at REAL PRIMARY KEY, memory_used_pct REAL,"
          " swap_used_bytes INTEGER, load1 REAL, gpu_util_pct REAL, gpu_temp_c REAL, "
          "gpu_power_w REAL, disk_used_pct REAL)")


class HostPoint(BaseModel):
    at: float
    memory_used_pct: float
    swap_used_bytes: int
    load1: float | None
    gpu_util_pct: float | None  # the first GPU's; None when not reported
    gpu_temp_c: float | None
    gpu_power_w: float | None
    disk_used_pct: float | None  # the fullest watched path


def point_of(snap: HostSnapshot) -> HostPoint:
    memory = snap.memory
    gpu = snap.gpus[0] if snap.gpus else None
    fullest = max((d.used_bytes / d.total_bytes * 100 for d in snap.disks if d.total_bytes),
                  default=None)
    return HostPoint(at=snap.at,
                     memory_used_pct=round(100 - memory.available_bytes / memory.total_bytes
                                           * 100, 2),
                     swap_used_bytes=memory.swap_used_bytes,
                     load1=snap.load[0] if snap.load else None,
                     gpu_util_pct=gpu.utilization_pct if gpu else None,
                     gpu_temp_c=gpu.temperature_c if gpu else None,
                     gpu_power_w=gpu.power_w if gpu else None,
                     disk_used_pct=None if fullest is None else round(fullest, 2))


class HostHistory:
    def __init__(self, path: Path, interval_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.points: deque[HostPoint] = deque(maxlen=int(KEEP_S / interval_s) + 1)
        self._db = open_db(path)
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()
        self._writes = 0
        self._load()

    def _load(self) -> None:
        since = self._clock() - KEEP_S
        rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM host_history WHERE at > ? "
                                "ORDER BY at", (since,)).fetchall()
        self.points.extend(HostPoint(**dict(zip(COLUMNS, row))) for row in rows)

    async def add(self, snap: HostSnapshot) -> None:
        point = point_of(snap)
        self.points.append(point)
        await asyncio.to_thread(self._write, point)

    def _write(self, point: HostPoint) -> None:
        values = tuple(getattr(point, c) for c in COLUMNS)
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO host_history VALUES "
                             f"({', '.join('?' * len(COLUMNS))})", values)
            self._writes += 1
            if self._writes % 100 == 1:  # prune now and then, not on every poll
                self._db.execute("DELETE FROM host_history WHERE at < ?",
                                 (self._clock() - KEEP_S,))

    def since(self, minutes: float, points: int) -> list[HostPoint]:
        """The last `minutes`, averaged down to at most `points` points."""
        start = self._clock() - minutes * 60
        recent = [p for p in self.points if p.at > start]
        if len(recent) <= points:
            return recent
        size = -(-len(recent) // points)  # ceil: buckets of equal count
        return [_mean(recent[i:i + size]) for i in range(0, len(recent), size)]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _mean(bucket: list[HostPoint]) -> HostPoint:
    values: dict[str, float | None] = {}
    for column in COLUMNS:
        seen = [getattr(p, column) for p in bucket if getattr(p, column) is not None]
        values[column] = sum(seen) / len(seen) if seen else None
    values["at"] = bucket[-1].at
    values["swap_used_bytes"] = int(values["swap_used_bytes"] or 0)
    return HostPoint(**values)  # type: ignore[arg-type]
