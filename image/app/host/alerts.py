"""Warnings about Spark 2's host, with hysteresis: raised past one threshold, cleared
only past a gentler one, so a figure hovering at the line does not flap. Each
transition is logged once; the active ones are shown with the host reading.

- memory: available under HOST_MEMORY_WARN_PCT of total (cleared 2 points above);
- swap: in use and grown by over 16 MiB within the last minute (cleared when it has
  not grown for 5 minutes, or is back to 0);
- GPU: at or over HOST_GPU_TEMP_WARN_C (cleared 5 °C below);
- disk: a watched path at or over HOST_DISK_WARN_PCT full (cleared 2 points below).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel

from ..config import Settings
from .history import HostPoint
from .stats import HostSnapshot

log = logging.getLogger(__name__)
GIB = 1024**3
SWAP_STEP = 16 * 1024**2


class HostWarning(BaseModel):
    kind: str  # memory, swap, gpu_temperature, disk
    message: str
    since: float


class HostWarnings:
    def __init__(self, settings: Settings) -> None:
        self.memory_pct = settings.host_memory_warn_pct
        self.gpu_temp_c = settings.host_gpu_temp_warn_c
        self.disk_pct = settings.host_disk_warn_pct
        self.active: dict[str, HostWarning] = {}

    def update(self, snap: HostSnapshot, history: Sequence[HostPoint]) -> None:
        for kind, (now_on, still_on, message) in self._rules(snap, history).items():
            current = self.active.get(kind)
            if current is None and now_on:
                self.active[kind] = HostWarning(kind=kind, message=message, since=snap.at)
                log.warning("Spark 2 %s: %s", kind, message)
            elif current is not None and not still_on:
                del self.active[kind]
                log.info("Spark 2 %s: back to normal (%s)", kind, message)
            elif current is not None:
                current.message = message

    def list(self) -> list[HostWarning]:
        return sorted(self.active.values(), key=lambda w: w.since)

    def _rules(self, snap: HostSnapshot, history: Sequence[HostPoint]
               ) -> dict[str, tuple[bool, bool, str]]:
        rules = {"memory": self._memory(snap), "swap": _swap(snap, history),
                 "disk": self._disk(snap)}
        temps = [g.temperature_c for g in snap.gpus if g.temperature_c is not None]
        if temps:  # a GPU that reports no temperature is neither hot nor cool
            hottest = max(temps)
            rules["gpu_temperature"] = (hottest >= self.gpu_temp_c,
                                        hottest >= self.gpu_temp_c - 5,
                                        f"GPU at {hottest:g} °C (warning at "
                                        f"{self.gpu_temp_c:g} °C)")
        return rules

    def _memory(self, snap: HostSnapshot) -> tuple[bool, bool, str]:
        mem = snap.memory
        free_pct = mem.available_bytes / mem.total_bytes * 100
        return (free_pct < self.memory_pct, free_pct < self.memory_pct + 2,
                f"{mem.available_bytes / GIB:.1f} GiB of {mem.total_bytes / GIB:.0f} GiB "
                f"available ({free_pct:.0f}%; warning under {self.memory_pct:g}%)")

    def _disk(self, snap: HostSnapshot) -> tuple[bool, bool, str]:
        if not snap.disks:
            return False, False, "no disk watched"
        disk = max(snap.disks, key=lambda d: d.used_bytes / max(d.total_bytes, 1))
        pct = disk.used_bytes / max(disk.total_bytes, 1) * 100
        return (pct >= self.disk_pct, pct >= self.disk_pct - 2,
                f"{disk.path} is {pct:.0f}% full ({disk.available_bytes / GIB:.1f} GiB free; "
                f"warning at {self.disk_pct:g}%)")


def _swap(snap: HostSnapshot, history: Sequence[HostPoint]) -> tuple[bool, bool, str]:
    used = snap.memory.swap_used_bytes
    minute = _at_or_before(history, snap.at - 60)
    five = _at_or_before(history, snap.at - 300)
    growing = minute is not None and used > minute.swap_used_bytes + SWAP_STEP
    grew_lately = five is None or used > five.swap_used_bytes
    return (used > 0 and growing, used > 0 and grew_lately,
            f"{used / GIB:.2f} GiB of swap in use"
            + (f", {(used - minute.swap_used_bytes) / 2**20:.0f} MiB more than a minute ago"
               if minute is not None and used > minute.swap_used_bytes else ""))


def _at_or_before(history: Sequence[HostPoint], at: float) -> HostPoint | None:
    for point in reversed(history):  # newest first: a few steps back, not the whole day
        if point.at <= at:
            return point
    return None
