"""Host history (bounded, kept across restarts, averaged down) and the warnings'
hysteresis, on readings the test makes and a clock it moves."""

from __future__ import annotations

import logging

from app.config import Settings
from app.host.history import KEEP_S, HostHistory
from app.host.stats import Disk, Gpu, HostSnapshot, Memory
from app.host.alerts import HostWarnings

GIB = 1024**3


class Clock:
    t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def snap(at: float, available_gib: float = 64, swap_gib: float = 0, temp: float | None = 50,
         disk_pct: float = 50) -> HostSnapshot:
    return HostSnapshot(
        at=at, memory=Memory(total_bytes=128 * GIB, available_bytes=int(available_gib * GIB),
                             swap_total_bytes=16 * GIB, swap_used_bytes=int(swap_gib * GIB)),
        load=[1.0, 1.0, 1.0],
        disks=[Disk(path="/", total_bytes=1000 * GIB, used_bytes=int(disk_pct * 10 * GIB),
                    available_bytes=int((100 - disk_pct) * 10 * GIB))],
        gpus=[Gpu(name="NVIDIA GB10", utilization_pct=None if temp is None else 10.0,
                  memory_used_bytes=None, memory_total_bytes=None, temperature_c=temp,
                  power_w=None)],
        gpu_detail="ok")


async def _fill(history: HostHistory, clock: Clock, count: int, step: float) -> None:
    for _ in range(count):
        clock.t += step
        await history.add(snap(clock.t))


def test_history_survives_a_restart_and_forgets_after_a_day(tmp_path):
    import asyncio
    clock = Clock()
    db = tmp_path / "jobs.sqlite3"
    first = HostHistory(db, interval_s=5, clock=clock)
    asyncio.run(_fill(first, clock, 120, 5))
    first.close()
    again = HostHistory(db, interval_s=5, clock=clock)
    assert len(again.points) == 120 and again.points[-1].at == clock.t
    assert again.points[-1].memory_used_pct == 50.0 and again.points[-1].gpu_power_w is None
    again.close()
    clock.t += KEEP_S - 300  # a day later, only the last 5 minutes are within 24 h
    later = HostHistory(db, interval_s=5, clock=clock)
    assert len(later.points) == 60
    later.close()


def test_memory_is_bounded_by_a_day_of_polls(tmp_path):
    import asyncio
    clock = Clock()
    history = HostHistory(tmp_path / "h.sqlite3", interval_s=600, clock=clock)
    asyncio.run(_fill(history, clock, 300, 600))  # 50 h of 10-minute polls
    assert len(history.points) == history.points.maxlen == 145
    history.close()


def test_since_averages_down_and_keeps_none_as_none(tmp_path):
    import asyncio
    clock = Clock()
    history = HostHistory(tmp_path / "h.sqlite3", interval_s=5, clock=clock)
    asyncio.run(_fill(history, clock, 720, 5))  # one hour
    hour = history.since(60, points=60)
    assert len(hour) == 60 and all(p.gpu_power_w is None for p in hour)
    assert hour[-1].at == clock.t and hour[0].memory_used_pct == 50.0
    assert len(history.since(5, points=360)) == 60  # few enough: as they are
    history.close()


def warnings(**settings) -> HostWarnings:
    return HostWarnings(Settings(_env_file=None, **settings))


def test_memory_warning_has_hysteresis_and_logs_each_transition_once(caplog):
    """128 GiB: raised under 10% available (12.8 GiB), cleared only at 12% (15.4 GiB)."""
    w = warnings(host_memory_warn_pct=10)
    caplog.set_level(logging.INFO, logger="app.host.alerts")
    seen = []
    for t, available in enumerate([20, 12, 13, 14, 12.5, 16, 16]):
        w.update(snap(t, available_gib=available), [])
        seen.append("memory" in w.active)
    assert seen == [False, True, True, True, True, False, False]
    lines = [r for r in caplog.records if "memory" in r.getMessage()]
    assert [r.levelname for r in lines] == ["WARNING", "INFO"]


def test_swap_warning_needs_growth_and_clears_when_it_stops():
    w = warnings()
    history = []
    for t in range(0, 900, 5):
        grown = min(t, 300) / 300 * 2  # swap grows 2 GiB over 5 minutes, then stays
        reading = snap(float(t), swap_gib=grown)
        w.update(reading, history)
        from app.host.history import point_of
        history.append(point_of(reading))
        if t == 200:
            assert "swap" in w.active and "more than a minute ago" in w.active["swap"].message
    assert "swap" not in w.active  # unchanged for over 5 minutes


def test_gpu_and_disk_warnings():
    w = warnings(host_gpu_temp_warn_c=85, host_disk_warn_pct=90)
    w.update(snap(1, temp=86, disk_pct=91), [])
    assert {x.kind for x in w.list()} == {"gpu_temperature", "disk"}
    assert "GPU at 86 °C" in w.active["gpu_temperature"].message
    w.update(snap(2, temp=82, disk_pct=89), [])  # within the hysteresis band
    assert {x.kind for x in w.list()} == {"gpu_temperature", "disk"}
    w.update(snap(3, temp=None, disk_pct=87), [])  # no temperature reported: no verdict
    assert {x.kind for x in w.list()} == {"gpu_temperature"}
    w.update(snap(4, temp=79), [])
    assert w.list() == []
