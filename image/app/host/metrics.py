"""`spark_control_host_*` gauges, set from each host reading.

A figure the host does not report has no sample (its series is removed), so a
graph shows a gap rather than a made-up 0.
"""

from __future__ import annotations

from prometheus_client import Gauge

from .stats import HostSnapshot

# `host`: the speech host's pool name (spark2, or local in local mode)
MEMORY = Gauge("spark_control_host_memory_bytes", "Spark 2 memory (unified on the GB10)",
               ["host", "kind"])  # total, available, swap_total, swap_used
LOAD = Gauge("spark_control_host_load", "load average", ["host", "minutes"])
DISK = Gauge("spark_control_host_disk_bytes", "disk of a watched path",
             ["host", "path", "kind"])
GPU = Gauge("spark_control_host_gpu", "GPU figures as nvidia-smi reports them",
            ["host", "gpu", "figure"])  # utilization_pct, temperature_c, power_w, memory_*


async def export_host(host: str, snap: HostSnapshot) -> None:
    memory = snap.memory
    for kind, value in (("total", memory.total_bytes), ("available", memory.available_bytes),
                        ("swap_total", memory.swap_total_bytes),
                        ("swap_used", memory.swap_used_bytes)):
        MEMORY.labels(host, kind).set(value)
    for minutes, value in zip(("1", "5", "15"), snap.load):
        LOAD.labels(host, minutes).set(value)
    for disk in snap.disks:
        DISK.labels(host, disk.path, "total").set(disk.total_bytes)
        DISK.labels(host, disk.path, "used").set(disk.used_bytes)
    for index, gpu in enumerate(snap.gpus):
        for figure in ("utilization_pct", "temperature_c", "power_w", "memory_used_bytes",
                       "memory_total_bytes"):
            value = getattr(gpu, figure)
            if value is None:
                _drop(GPU, host, str(index), figure)
            else:
                GPU.labels(host, str(index), figure).set(value)


def _drop(gauge: Gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass
